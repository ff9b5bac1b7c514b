"""The shared pieces the chat front-ends use: per-user lanes with cancel, the rate limit, job progress wording."""
from __future__ import annotations

import asyncio

import pytest

from bot.common.progress import describe, follow_job
from bot.common.ratelimit import RateLimiter
from bot.common.replies import split_text
from bot.common.userqueue import QueueFull, ReplyCancelled, UserQueue
from core.errors import RateLimited
from core.types import Job, JobStatus


async def test_one_users_replies_run_in_order_while_other_users_run_alongside():
    queue = UserQueue()
    log: list[str] = []

    async def work(name: str, seconds: float) -> str:
        log.append(f"start {name}")
        await asyncio.sleep(seconds)
        log.append(f"end {name}")
        return name

    results = await asyncio.gather(
        queue.run("anna", lambda: work("anna-1", 0.2)),
        queue.run("anna", lambda: work("anna-2", 0.01)),
        queue.run("ben", lambda: work("ben-1", 0.01)),
    )
    assert results == ["anna-1", "anna-2", "ben-1"]
    assert log.index("end anna-1") < log.index("start anna-2")  # anna's second waits for her first
    assert log.index("end ben-1") < log.index("end anna-1")  # ben is not stuck behind anna


async def test_a_user_cancels_their_own_running_reply_and_the_next_one_runs():
    queue = UserQueue()
    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        await asyncio.sleep(30)
        return "never"

    first = asyncio.create_task(queue.run("anna", slow))
    second = asyncio.create_task(queue.run("anna", lambda: asyncio.sleep(0, "next")))
    await started.wait()
    assert not queue.cancel("ben") and queue.cancel("anna")
    with pytest.raises(ReplyCancelled):
        await first
    assert await second == "next"
    assert not queue.busy("anna") and queue.stats()["users_waiting"] == 0


async def test_a_user_cannot_pile_up_unlimited_waiting_replies():
    queue = UserQueue(max_waiting=2)
    gate = asyncio.Event()
    tasks = [asyncio.create_task(queue.run("anna", gate.wait)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(QueueFull):
        await queue.run("anna", gate.wait)
    gate.set()
    await asyncio.gather(*tasks)


def test_rate_limit_lets_a_burst_through_then_says_how_long_to_wait():
    now = [0.0]
    limiter = RateLimiter(6, clock=lambda: now[0])  # one token every 10 s, bursts of 6
    for _ in range(6):
        limiter.check("anna")
    with pytest.raises(RateLimited) as refused:
        limiter.check("anna")
    assert 9 <= refused.value.retry_after <= 10
    limiter.check("ben")  # others are not affected
    now[0] += 10
    limiter.check("anna")


def test_job_descriptions_show_progress_eta_and_result():
    job = Job(id=3, kind="avatar", target="bob", status=JobStatus.RUNNING, progress=0.42, step=42, max_steps=100,
              eta_seconds=185)
    assert describe(job) == "Avatar 'bob' (job 3): training 42%, step 42/100, about 3 min left."
    job.status, job.message = JobStatus.FAILED, "no face found"
    assert describe(job).endswith("failed. no face found")


async def test_follow_job_reports_changes_until_the_job_ends():
    states = [(JobStatus.QUEUED, 0.0), (JobStatus.RUNNING, 0.0), (JobStatus.RUNNING, 0.004), (JobStatus.RUNNING, 0.5),
              (JobStatus.SUCCEEDED, 1.0)]

    class Jobs:  # the JobRepository surface follow_job reads, replaying a job's life
        async def get(self, job_id: int) -> Job:
            status, progress = states.pop(0) if len(states) > 1 else states[0]
            return Job(id=job_id, kind="voice", target="anna", status=status, progress=progress)

    seen: list[str] = []

    async def on_change(job: Job) -> None:
        seen.append(f"{job.status.value} {job.progress:.0%}")

    final = await follow_job(Jobs(), 1, on_change, interval=0)  # type: ignore[arg-type]  # a stand-in for the job repository, with only the call follow_job makes
    assert final.status is JobStatus.SUCCEEDED
    # a 0.4% move is not worth an edit; every status change is
    assert seen == ["queued 0%", "running 0%", "running 50%", "succeeded 100%"]


def test_long_answers_are_split_at_word_ends():
    parts = split_text("word " * 2000, 4096)
    assert all(len(p) <= 4096 for p in parts) and "".join(parts).count("word") == 2000
    assert all(not p.endswith("wor") for p in parts)


async def test_a_cap_on_replies_at_once_serves_a_burst_in_arrival_order_and_cancel_reaches_the_waiting():
    queue = UserQueue(max_running=1)
    finished: list[str] = []
    gate = asyncio.Event()

    async def work(name: str) -> None:
        await gate.wait()
        finished.append(name)

    tasks = [asyncio.create_task(queue.run(name, lambda n=name: work(n))) for name in ("anna", "ben", "cleo")]
    await asyncio.sleep(0.01)
    assert queue.cancel("ben")  # ben is still waiting for a free slot
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert finished == ["anna", "cleo"] and isinstance(results[1], ReplyCancelled)
