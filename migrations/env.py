from __future__ import annotations

import asyncio
import os

from alembic import context

from storage.models import Base

config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        # called from storage.db.upgrade inside the application's own event loop
        _configure_and_run(connection)
        return
    from storage.db import create_engine

    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DOPPEL_DATABASE_URL", "sqlite+aiosqlite:///var/doppel.db")

    async def _main() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(_configure_and_run)
        await engine.dispose()

    asyncio.run(_main())


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_online()
