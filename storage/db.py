"""Engine, sessions and schema upgrades."""
from __future__ import annotations

import asyncio
import fcntl
import zlib
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.drivername == "sqlite+aiosqlite":
        _stop_aiosqlite_once()
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, pool_pre_ping=True)
    if parsed.drivername.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _stop_aiosqlite_once() -> None:
    """Make aiosqlite's `Connection.stop()` idempotent: a second call returns the first one's future.

    A task cancelled twice in a query (a bot stopping mid-answer, then the event loop's own shutdown) makes
    SQLAlchemy force-stop the connection's worker thread while its shielded graceful close is still queued;
    that close then waits forever on a second stop the exited thread never serves, and the event loop can
    never finish closing. Every stop after the first waits for the first, which the thread does serve.
    """
    import aiosqlite

    if getattr(aiosqlite.Connection.stop, "_doppel_once", False):
        return
    first_stop = aiosqlite.Connection.stop

    def stop(self):
        if not hasattr(self, "_doppel_stopping"):
            self._doppel_stopping = first_stop(self)
        return self._doppel_stopping

    stop._doppel_once = True  # type: ignore[attr-defined]  # marks the patch, so a second call leaves it alone
    aiosqlite.Connection.stop = stop  # type: ignore[method-assign]  # the patch itself: see the docstring


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets the bots read history while the job worker writes progress
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply Alembic migrations on this engine's database; running it again changes nothing.

    Several processes may start on a fresh database at once (a bot, the worker, `doppel db upgrade`): each
    migrates under a lock, so the second finds the schema made instead of failing on "table already exists".
    """
    from alembic import command

    def _run(sync_conn) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    url = engine.url
    if url.drivername.startswith("sqlite"):
        async with _file_lock(url.database), engine.begin() as conn:
            await conn.run_sync(_run)
    elif url.drivername.startswith("postgresql"):
        async with engine.connect() as conn:
            # a session-level advisory lock: held by this connection across the transactions below until released
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            await conn.commit()
            try:
                async with conn.begin():
                    await conn.run_sync(_run)
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                await conn.commit()
    else:
        async with engine.begin() as conn:
            await conn.run_sync(_run)


# one fixed number names doppel's migration lock among a PostgreSQL server's advisory locks
MIGRATION_LOCK_KEY = zlib.crc32(b"doppel:migrations")


@asynccontextmanager
async def _file_lock(database: str | None):
    """An exclusive lock on `<database>.lock` beside a SQLite file (no lock needed in memory)."""
    if database in (None, "", ":memory:") or database.startswith("file::memory:"):
        yield
        return
    if database.startswith("file:"):  # a URI filename (?uri=true): the path without its scheme and query
        database = database[len("file:"):].split("?", 1)[0]
    path = Path(database + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:  # noqa: ASYNC230 - opening a lock file is instant; the wait for the lock runs in a thread
        await asyncio.to_thread(fcntl.flock, handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


def alembic_config():
    from alembic.config import Config

    import migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return cfg
