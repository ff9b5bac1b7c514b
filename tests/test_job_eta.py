"""A training job's ETA comes from the training stage's own pace, not from the quicker (or slower) preparation."""
from __future__ import annotations

import pytest

from bot import worker
from bot.worker import RunningJob


async def test_the_eta_follows_the_training_stage_not_the_preparation(services, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(worker.time, "monotonic", lambda: now[0])
    job = await services.jobs.submit("voice", "ann", engine="lite", max_steps=100, gpu=None, params={})
    ctx = RunningJob(job, {}, "", "", services.jobs)

    async def report(at: float, step: int, progress: float):
        now[0] = at
        await ctx.report(step=step, progress=progress)
        return (await services.jobs.get(job.id)).eta_seconds

    assert await report(0.0, 0, 0.0) is None  # preparation: no pace to tell yet
    assert await report(1.0, 0, 0.3) is None  # features done quickly
    assert await report(2.0, 1, 0.35) is None  # training starts: its pace is measured from here
    # 0.05 of the job in 10 s of training, 0.6 left: 120 s (the preparation's pace would say 18 s)
    assert await report(12.0, 2, 0.4) == pytest.approx(120.0)
