"""Schema migrations and repositories on a real SQLite file and, for the races and the schema, on a real
PostgreSQL server (tests/postgres.py)."""
import asyncio
import sqlite3
from types import SimpleNamespace

import pytest
from sqlalchemy import inspect

from storage.db import create_engine, current_revision, session_factory, upgrade
from tests.postgres import postgres  # noqa: F401 - a pytest fixture, requested by name
from datetime import UTC


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request, tmp_path) -> str:
    """A fresh, empty database on each backend doppel supports."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    return await request.getfixturevalue("postgres").fresh_database()


@pytest.fixture
async def store(database_url):
    """The repositories that the races below go through, on a migrated database."""
    from storage.history import HistoryRepository
    from storage.users import ChatSettingsRepository, UserRepository

    engine = create_engine(database_url)
    await upgrade(engine)
    sessions = session_factory(engine)
    try:
        yield SimpleNamespace(users=UserRepository(sessions), chats=ChatSettingsRepository(sessions),
                              history=HistoryRepository(sessions))
    finally:
        await engine.dispose()


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
    from storage.updates import HandledUpdates

    handled = HandledUpdates(services.sessions, "telegram")
    assert await handled.mark(10) is True
    assert await handled.mark(10) is False
    assert await handled.seen(10) and not await handled.seen(11)
    assert await handled.last() == 10


async def test_jobs_are_claimed_once_and_requeued_after_a_crash(services):
    from core.types import JobStatus

    import socket
    import subprocess
    import sys

    job = await services.jobs.submit("avatar", "ann", engine="lite", max_steps=100, gpu=None, params={})
    # a worker process on this host that has since exited
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    claimed = await services.jobs.claim_next(worker=f"{socket.gethostname()}:{dead.stdout.strip()}")
    assert claimed.id == job.id and claimed.status is JobStatus.RUNNING
    assert await services.jobs.claim_next() is None
    assert await services.jobs.recover() == 1  # its worker died: the job goes back to the queue
    assert (await services.jobs.claim_next()).id == job.id
    assert await services.jobs.report(job.id, step=10, progress=0.1, checkpoint="ck-10") is True
    await services.jobs.cancel(job.id)
    assert await services.jobs.report(job.id, step=11, progress=0.11) is False


async def test_a_new_users_first_messages_at_once_make_one_user(store):
    import asyncio

    await asyncio.gather(*(store.users.touch("tg:77", "Ann") for _ in range(8)))
    assert [u.id for u in await store.users.list()].count("tg:77") == 1


async def test_the_migrations_build_exactly_the_models_schema(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from storage.models import Base

    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
    finally:
        await engine.dispose()
    assert diff == []


async def test_old_handled_updates_are_pruned(services):
    from datetime import datetime, timedelta

    from storage.models import HandledUpdate
    from storage.updates import HandledUpdates

    handled = HandledUpdates(services.sessions, "telegram")
    async with services.sessions.begin() as session:
        session.add(HandledUpdate(platform="telegram", update_id=1, handled_at=datetime.now(UTC) - timedelta(days=30)))
        session.add(HandledUpdate(platform="discord", update_id=1, handled_at=datetime.now(UTC) - timedelta(days=30)))
    await handled.mark(2)
    assert await handled.prune() == 1
    assert not await handled.seen(1) and await handled.seen(2)
    assert await HandledUpdates(services.sessions, "discord").seen(1)  # another platform's ids are its own


MIGRATE_AT = """
import asyncio, sys, time
from storage.db import create_engine, upgrade

async def main():
    engine = create_engine(sys.argv[1])
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # every process starts migrating at the same moment
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()

asyncio.run(main())
"""


@pytest.mark.slow  # starts several processes
async def test_processes_starting_together_on_a_fresh_database_all_migrate_it(database_url):
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    url = database_url
    start = time.time() + 4.0
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE_AT, url, str(start)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0] * 8, [err[-400:] for _, err in results if err]
    engine = create_engine(url)
    try:
        assert await current_revision(engine) is not None
    finally:
        await engine.dispose()


async def test_a_new_chats_first_messages_at_once_are_all_kept(store):
    import asyncio

    from core.types import ConversationKey

    # a group chat nobody has written in yet: twenty members' first exchanges and a settings change land together
    work = [store.history.append_exchange(ConversationKey(f"tg:{u}", "tg:-500"), f"hi from {u}", "hello") for u in range(20)]
    work.append(store.chats.set("tg:-500", persona="default"))
    results = await asyncio.gather(*work, return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    counts = [await store.history.count(ConversationKey(f"tg:{u}", "tg:-500")) for u in range(20)]
    assert counts == [2] * 20
    assert (await store.chats.get("tg:-500")).persona == "default"


async def test_a_query_cancelled_twice_leaves_no_close_waiting_forever(tmp_path):
    # a bot stopping mid-answer cancels its query, then the event loop's shutdown cancels it again: the
    # connection's close must still finish, or the loop can never close (this hung the Discord tests)
    from sqlalchemy import text

    from storage.db import create_engine

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'slow.db'}")

    async def slow_query():
        async with engine.connect() as conn:
            await conn.execute(text("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000000) "
                                    "SELECT count(*) FROM n"))

    task = asyncio.create_task(slow_query())
    await asyncio.sleep(0.3)
    task.cancel()
    await asyncio.sleep(0.01)
    task.cancel()
    others = lambda: {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
    # the hang was forever; the query it waits out (3 million rows) takes seconds, more on a busy machine
    _, pending = await asyncio.wait(others(), timeout=120)
    assert not pending, [t.get_coro() for t in pending]
    await engine.dispose()
