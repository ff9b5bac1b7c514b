"""The Telegram front-end (aiogram 3): thin routers over bot/common, crash-safe update delivery."""
