"""Every repository's paths on both backends doppel supports: a real SQLite file and a real PostgreSQL server
(tests/postgres.py, one cluster per session, a fresh database per test)."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, UTC
from types import SimpleNamespace

import pytest

from core.types import ConversationKey, JobStatus, VoiceEngine
from storage.db import create_engine, session_factory
from tests.postgres import Database, database, postgres  # noqa: F401 - pytest fixtures, requested by name


@pytest.fixture
async def repos(database: Database):
    from storage.avatars import AvatarRepository
    from storage.history import HistoryRepository
    from storage.jobs import JobRepository
    from storage.updates import HandledUpdates
    from storage.users import ChatSettingsRepository, UserRepository
    from storage.voices import VoiceRepository

    sessions = session_factory(database.engine)
    return SimpleNamespace(
        backend=database.backend, url=database.url, sessions=sessions, users=UserRepository(sessions),
        chats=ChatSettingsRepository(sessions), history=HistoryRepository(sessions), voices=VoiceRepository(sessions),
        avatars=AvatarRepository(sessions), jobs=JobRepository(sessions), telegram=HandledUpdates(sessions, "telegram"),
    )


async def test_users_chats_and_history(repos):
    key = ConversationKey("tg:5", "tg:5")
    await repos.users.touch("tg:5", "Ann")
    await repos.users.touch("tg:5", "Ann B")
    await repos.users.set_allowed("tg:5", False)
    await repos.users.set_admin("tg:6", True)
    user = await repos.users.get("tg:5")
    assert (user.display_name, user.allowed, user.is_admin) == ("Ann B", False, False)
    assert [u.id for u in await repos.users.list()] == ["tg:5", "tg:6"]
    assert user.created_at.tzinfo is not None  # timezone-aware on both backends

    await repos.chats.set("tg:5", persona="brief", language="fr", speed=1.2)
    await repos.chats.set("tg:5", voice="anna", fsm={"1:0:default": {"state": "Enrol:name"}})
    chat = await repos.chats.get("tg:5")
    assert (chat.persona, chat.language, chat.voice) == ("brief", "fr", "anna")
    assert chat.settings == {"speed": 1.2, "fsm": {"1:0:default": {"state": "Enrol:name"}}}

    for i in range(3):
        await repos.history.append_exchange(key, f"question {i} with ünïcode ✓", f"answer {i}")
    assert await repos.history.count(key) == 6
    loaded = await repos.history.load(key, token_budget=10_000)
    assert [m.content for m in loaded][:2] == ["question 0 with ünïcode ✓", "answer 0"]
    exported = await repos.history.export_user("tg:5")
    assert len(exported["messages"]) == 6 and datetime.fromisoformat(exported["messages"][0]["at"]).tzinfo is not None
    assert await repos.users.stats() == {"users": 2, "messages": 6, "voices": 0, "jobs": 0}
    assert await repos.history.reset(key) == 6
    await repos.history.append_exchange(key, "again", "yes")
    assert await repos.history.delete_user("tg:5") == 2
    assert await repos.chats.delete("tg:5") is True and await repos.chats.delete("tg:5") is False


async def test_a_nul_in_text_and_a_long_id_are_kept_alike_on_both_backends(repos):
    # PostgreSQL refused both ("invalid byte sequence", "value too long for type character varying(64)"), SQLite kept them
    long_id = "cli:" + "x" * 196
    key = ConversationKey(long_id, long_id)
    await repos.users.touch(long_id, "Ann\x00 B")
    await repos.history.append_exchange(key, "before\x00after", "an answer")
    await repos.chats.set(long_id, persona="brief")
    assert [m.content for m in await repos.history.load(key, token_budget=10_000)] == ["beforeafter", "an answer"]
    assert (await repos.chats.get(long_id)).persona == "brief"
    user = await repos.users.get(long_id)
    assert user.display_name == "Ann B" and len(user.id) == 64 and user.id.startswith("cli:xxx")
    # the same long id always finds the same user; another long id with the same start is someone else
    other = "cli:" + "x" * 195 + "y"
    await repos.users.touch(other, "Bo")
    assert [u.display_name for u in await repos.users.list()] == ["Ann B", "Bo"]
    assert (await repos.users.get(user.id)).display_name == "Ann B"  # the stored id reads back as itself
    assert await repos.history.delete_user(long_id) == 2


async def test_settings_changed_at_once_keep_every_change(repos):
    # two admins (or two bot replicas) changing different settings of one chat at the same moment
    await repos.chats.set("dc:9", persona="default")
    await asyncio.gather(*(repos.chats.set("dc:9", **{f"key{i}": i}) for i in range(12)))
    assert (await repos.chats.get("dc:9")).settings == {f"key{i}": i for i in range(12)}


async def test_a_voice_made_by_two_admins_at_once_is_made_once(repos):
    # each saw no voice yet; the second insert meets the first's row and keeps it instead of failing
    await asyncio.gather(*(repos.voices.create_missing("zed", VoiceEngine.LITE, ready=False, params={"dir": "zed"})
                           for _ in range(6)))
    assert await repos.voices.names() == ["zed"]
    await repos.voices.set_ready("zed", True)
    await repos.voices.create_missing("zed", VoiceEngine.LITE, ready=False)
    assert (await repos.voices.get("zed")).ready  # an existing voice is left as it is


async def test_voices_versions_rename_and_delete(repos, tmp_path):
    await repos.voices.upsert("anna", VoiceEngine.LITE, "en", ready=False, params={"steps": 10})
    clip = await repos.voices.add_clip("anna", str(tmp_path / "voices/anna/1.ogg"), 3.5, "hello", "asr")
    await repos.voices.edit_transcript(clip.id, "hello there")
    await repos.chats.set("tg:1", voice="anna")
    for n in (1, 2):
        artifact = tmp_path / f"voices/anna/v{n}.pt"
        artifact.parent.mkdir(parents=True, exist_ok=True)
        artifact.write_bytes(b"x")
        assert await repos.voices.add_version("anna", str(artifact), {"steps": n}) == n
    await repos.voices.update_params("anna", {"quality": {"similarity": 0.9}})
    await repos.voices.restore("anna", 1)
    voice = await repos.voices.get("anna")
    assert voice.ready and voice.params["version"] == 1 and voice.params["quality"] == {"similarity": 0.9}
    renamed = await repos.voices.rename("anna", "bella", str(tmp_path / "voices/anna"), str(tmp_path / "voices/bella"))
    assert renamed.params["artifact"].endswith("voices/bella/v1.pt")
    assert [c.transcript for c in await repos.voices.clips("bella")] == ["hello there"]
    assert (await repos.chats.get("tg:1")).voice == "bella" and await repos.voices.names() == ["bella"]
    await repos.voices.set_ready("bella", False, {"note": "retraining"})
    await repos.voices.delete("bella")
    assert await repos.voices.list() == [] and (await repos.chats.get("tg:1")).voice is None


async def test_avatars_versions_rename_and_delete(repos, tmp_path):
    await repos.avatars.new_source("eve", "lite", str(tmp_path / "avatars/eve/src.mp4"), {"video": {"seconds": 30}})
    await repos.chats.set("tg:2", avatar="eve")
    out = tmp_path / "avatars/eve/v1"
    out.mkdir(parents=True)
    assert await repos.avatars.add_version("eve", str(out), {"steps": 5}) == 1
    await repos.avatars.restore("eve", 1)
    await repos.avatars.rename("eve", "zoe", str(tmp_path / "avatars/eve"), str(tmp_path / "avatars/zoe"))
    zoe = await repos.avatars.get("zoe")
    assert zoe.ready and zoe.artifact_path.endswith("avatars/zoe/v1") and (await repos.chats.get("tg:2")).avatar == "zoe"
    await repos.avatars.upsert("photo", "photo", ready=True, source_path="p.jpg")
    assert [a.name for a in await repos.avatars.list()] == ["photo", "zoe"]
    await repos.avatars.delete("zoe")
    assert await repos.avatars.find("zoe") is None and (await repos.chats.get("tg:2")).avatar is None


async def test_jobs_life_cycle(repos):
    job = await repos.jobs.submit("voice", "anna", engine="lite", max_steps=50, gpu=None, params={"clips": [1, 2]},
                                  notify_chat="tg:1")
    claimed = await repos.jobs.claim_next(kinds=["voice"], worker="elsewhere:1")
    assert claimed.id == job.id and claimed.status is JobStatus.RUNNING
    assert await repos.jobs.report(job.id, step=5, progress=0.1, eta_seconds=30, checkpoint="ck5", log_line="step 5")
    assert await repos.jobs.params(job.id) == ({"clips": [1, 2]}, "ck5")
    await repos.jobs.finish(job.id, JobStatus.FAILED, "out of memory")
    retry = await repos.jobs.resubmit(job.id)
    await repos.jobs.retarget("voice", "anna", "bella", {retry.id: {"clips": [3]}})
    assert [j.id for j in await repos.jobs.for_target("voice", "bella")] == [job.id, retry.id]
    assert (await repos.jobs.latest("voice", "bella")).id == retry.id
    assert await repos.jobs.params_of("voice", "bella") == {job.id: {"clips": [1, 2]}, retry.id: {"clips": [3]}}
    await repos.jobs.cancel(retry.id)
    assert await repos.jobs.cancel_requested(retry.id)
    assert [j.status for j in await repos.jobs.list([JobStatus.CANCELLED, JobStatus.FAILED])] == \
        [JobStatus.CANCELLED, JobStatus.FAILED]

    # a worker on another host that stopped reporting ten minutes ago: its job goes back to the queue
    stuck = await repos.jobs.submit("avatar", "eve", engine="lite", max_steps=10, gpu=0, params={})
    await repos.jobs.claim_next(worker="gone-host:1")
    from sqlalchemy import update

    from storage.models import JobRecord

    async with repos.sessions.begin() as session:
        await session.execute(update(JobRecord).where(JobRecord.id == stuck.id)
                              .values(updated_at=datetime.now(UTC) - timedelta(minutes=11)))
    assert await repos.jobs.recover(stale_seconds=600) == 1
    assert (await repos.jobs.get(stuck.id)).status is JobStatus.QUEUED


async def test_update_inbox_and_handled_ids(repos):
    payload = {"update_id": 7, "message": {"text": "hi"}}
    await repos.telegram.keep(7, payload)
    await repos.telegram.keep(7, payload)  # the same update posted twice
    assert await repos.telegram.pending() == [payload]
    assert await repos.telegram.mark(7) is True and await repos.telegram.pending() == []
    assert await repos.telegram.mark(7) is False
    assert await repos.telegram.seen(7) and await repos.telegram.last() == 7
    assert await repos.telegram.prune(keep=timedelta(0)) == 1


async def test_workers_claiming_at_once_take_each_job_exactly_once(repos):
    from storage.jobs import JobRepository

    jobs = [await repos.jobs.submit("voice", f"v{i}", engine="lite", max_steps=1, gpu=None, params={}) for i in range(40)]
    # eight workers, each on its own connection pool as separate processes would be
    engines = [create_engine(repos.url) for _ in range(8)]
    queued_when_told_empty: list[int] = []

    async def worker(n: int) -> list[int]:
        mine, queue = [], JobRepository(session_factory(engines[n]))
        while (job := await queue.claim_next(worker=f"host-{n}:1")) is not None:
            mine.append(job.id)
        # "nothing queued" must be true: a worker that gave up on a job another one took would leave jobs behind
        queued_when_told_empty.append(len(await queue.list([JobStatus.QUEUED])))
        return mine

    try:
        claimed = await asyncio.gather(*(worker(n) for n in range(8)))
    finally:
        for engine in engines:
            await engine.dispose()
    every = [job_id for mine in claimed for job_id in mine]
    assert sorted(every) == [j.id for j in jobs]  # each job once, none left out
    assert queued_when_told_empty == [0] * 8
    assert {j.status for j in await repos.jobs.list()} == {JobStatus.RUNNING}


async def test_replicas_claim_inbox_updates_one_at_a_time_and_take_over_a_dead_ones(repos):
    import subprocess
    import sys

    from storage.owners import process_id

    inbox = repos.telegram
    a, b = f"{process_id()}/a", f"{process_id()}/b"
    for uid in (1, 2, 3):
        await inbox.keep(uid, {"update_id": uid})
    await inbox.keep(4, {"update_id": 4}, holder=a, lease=60)  # taken in by replica a, which answers it itself

    # both replicas sweep the inbox at once: each free update goes to exactly one of them
    got_a, got_b = await asyncio.gather(inbox.due(a, lease=60), inbox.due(b, lease=60))
    ids = sorted(p["update_id"] for p in got_a + got_b)
    assert ids == [1, 2, 3]
    assert await inbox.due(b, lease=60) == [] and not await inbox.claim(4, b, lease=60)
    assert await inbox.claim(4, a, lease=60) and await inbox.renew(4, a, lease=60) and not await inbox.renew(4, b, lease=60)

    # a's lease runs out without a renewal (a hung or died on another host): b takes its updates over, a learns it lost them
    await inbox.renew(4, a, lease=-1)
    assert [p["update_id"] for p in await inbox.due(b, lease=60)] == [4]
    assert not await inbox.renew(4, a, lease=60)

    # a replica on this host whose process is gone loses its claims at once, lease or not
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = f"{process_id().rpartition(':')[0]}:{dead.stdout.strip()}/c"
    await inbox.keep(5, {"update_id": 5}, holder=gone, lease=600)
    assert await inbox.claim(5, b, lease=60)

    await inbox.release(5, b)  # its answer failed for a passing reason: free for the next sweep, anywhere
    assert [p["update_id"] for p in await inbox.due(a, lease=60)] == [5]
    assert await inbox.mark(5) and not await inbox.claim(5, a, lease=60)  # answered: out of the inbox
