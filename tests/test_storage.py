"""Schema migrations and repositories on a real SQLite file."""
import sqlite3

from sqlalchemy import inspect

from storage.db import create_engine, current_revision, upgrade


async def test_migrations_upgrade_an_empty_database_and_are_idempotent(tmp_path):
    path = tmp_path / "fresh.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await upgrade(engine)
        first = await current_revision(engine)
        await upgrade(engine)
        assert await current_revision(engine) == first and first is not None
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert {"users", "chats", "messages", "voices", "voice_clips", "avatars", "jobs", "handled_updates"} <= tables
    finally:
        await engine.dispose()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


async def test_handled_updates_are_recorded_once(services):
    from storage.users import HandledUpdates

    handled = HandledUpdates(services.sessions, "telegram")
    assert await handled.mark(10) is True
    assert await handled.mark(10) is False
    assert await handled.seen(10) and not await handled.seen(11)
    assert await handled.last() == 10


async def test_jobs_are_claimed_once_and_requeued_after_a_crash(services):
    from core.types import JobStatus

    job = await services.jobs.submit("avatar", "ann", engine="lite", max_steps=100, gpu=None, params={})
    claimed = await services.jobs.claim_next()
    assert claimed.id == job.id and claimed.status is JobStatus.RUNNING
    assert await services.jobs.claim_next() is None
    assert await services.jobs.recover() == 1  # the worker died: its job goes back to the queue
    assert (await services.jobs.claim_next()).id == job.id
    assert await services.jobs.report(job.id, step=10, progress=0.1, checkpoint="ck-10") is True
    await services.jobs.cancel(job.id)
    assert await services.jobs.report(job.id, step=11, progress=0.11) is False
