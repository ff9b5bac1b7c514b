"""Front-ends (CLI, Telegram, Discord, web) and the one place where engines are composed."""
