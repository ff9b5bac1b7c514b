"""The web channel: a chat page that talks to the digital human, and an admin dashboard. Starlette + uvicorn."""
