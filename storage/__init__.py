"""Persistence: SQLAlchemy 2 async models and repositories (aiosqlite by default, any SQLAlchemy URL)."""
