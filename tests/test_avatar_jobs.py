"""Avatar training as a job: queued with the intake checks, run by `doppel worker` in its own process,
killed mid-training and restarted — it resumes from the checkpoint, not from step 0 — then cancelled runs."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.worker import Worker
from core.errors import BadReference
from core.types import JobStatus
from storage.avatars import AvatarRepository
from storage.db import create_engine, session_factory, upgrade
from storage.jobs import JobRepository
from tests.avatar_clips import training_mp4, write
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

TINY_PARAMS = {"config": "tiny", "min_seconds": 10.0, "checkpoint_every": 10, "batch": 8}


async def _db(data_dir: Path):
    engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'doppel.db'}")
    await upgrade(engine)
    sessions = session_factory(engine)
    return engine, sessions, JobRepository(sessions), AvatarRepository(sessions)


async def _queue(tmp_path: Path, jobs: JobRepository, avatars: AvatarRepository, max_steps: int):
    source = write(tmp_path / "var" / "avatars" / "anna" / "source.mp4", training_mp4())
    await avatars.upsert("anna", "lite", ready=False, source_path=str(source))
    return await jobs.submit("avatar", "anna", engine="lite", max_steps=max_steps, gpu=None, notify_chat="tg:1",
                             params={**TINY_PARAMS, "source": str(source), "dir": str(source.parent)})


def _worker(data_dir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "DOPPEL_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "worker", "--kind", "avatar", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


async def test_killed_worker_resumes_from_its_checkpoint(tmp_path):
    data_dir = tmp_path / "var"
    engine, _sessions, jobs, avatars = await _db(data_dir)
    try:
        job = await _queue(tmp_path, jobs, avatars, max_steps=40)
        first = _worker(data_dir)
        try:
            deadline = time.monotonic() + 240
            while True:
                current = await jobs.get(job.id)
                _, checkpoint = await jobs.params(job.id)
                if checkpoint and current.step >= 10:
                    break
                assert first.poll() is None, first.stdout.read().decode()[-2000:]
                assert time.monotonic() < deadline, "the worker never reached its first checkpoint"
                await asyncio.sleep(0.2)
        finally:
            first.send_signal(signal.SIGKILL)  # a crash: no chance to clean up
            first.wait()
        crashed = await jobs.get(job.id)
        assert crashed.status is JobStatus.RUNNING and 0.1 < crashed.progress < 1.0
        assert crashed.max_steps == 40 and crashed.notify_chat == "tg:1"
        _, checkpoint = await jobs.params(job.id)
        assert Path(checkpoint).exists()

        second = _worker(data_dir, "--once")
        out, _ = second.communicate(timeout=300)
        assert second.returncode == 0, out.decode()[-2000:]
        done = await jobs.get(job.id)
        assert done.status is JobStatus.SUCCEEDED, done.message
        assert done.progress == 1.0 and done.step == 40
        resumed = [line for line in done.log_tail.splitlines() if "resumed from the checkpoint" in line]
        assert resumed and int(resumed[0].rsplit(" ", 1)[1]) >= 10  # not step 0
        avatar = await avatars.get("anna")
        assert avatar.ready and (Path(avatar.artifact_path) / "lite.pt").exists()
    finally:
        await engine.dispose()


async def test_cancel_stops_a_running_training(tmp_path):
    data_dir = tmp_path / "var"
    engine, _sessions, jobs, avatars = await _db(data_dir)
    try:
        job = await _queue(tmp_path, jobs, avatars, max_steps=5000)
        worker = Worker(jobs, data_dir, kinds=["avatar"])
        run = asyncio.create_task(worker.run_once())
        while (await jobs.get(job.id)).step < 10:
            assert not run.done(), (await jobs.get(job.id)).message
            await asyncio.sleep(0.2)
        await jobs.cancel(job.id)
        finished = await asyncio.wait_for(run, 120)
        assert finished.status is JobStatus.CANCELLED
        assert finished.step < 5000 and finished.eta_seconds is not None
        assert not (await avatars.get("anna")).ready
    finally:
        await engine.dispose()


async def test_submit_refuses_a_bad_video_before_queueing(services):
    from bot.common.avatars import submit_avatar_training

    short = training_mp4(6.0)
    with pytest.raises(BadReference, match="6 s long; please send at least 20 s"):
        await submit_avatar_training(services, "anna", short)
    assert await services.jobs.list() == []
    services.settings.avatar_min_seconds = 5.0
    job = await submit_avatar_training(services, "anna", short, notify_chat="tg:5", config="tiny")
    assert job.status is JobStatus.QUEUED and job.kind == "avatar"
    assert not await services.renderer.is_ready("anna")
