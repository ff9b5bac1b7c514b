"""Training on a Ray cluster (DOPPEL_JOBS=ray), on a real local Ray instance: a voice queued as an admin queues it
trains in a Ray actor that reports into the jobs table; a cancel in the jobs table stops it within 5 s; an actor
killed mid-training (what losing its node does) is replaced, and the job resumes from its checkpoint, read back
from the artifact store, and finishes."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import ray

from bot.common import lifecycle
from bot.common.voices import add_voice
from bot.ray_worker import RayWorker, actor_name
from core.types import JobStatus
from storage.models import JobRecord
from tests.conftest import ROOT
from tests.speech import speech_clips

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    # the actors import this checkout (its handlers, and tests/ray_handlers.py), whatever else is installed
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def settings(settings):
    # the tiny test network speaks noise, which the quality gate (tested elsewhere) would rightly refuse
    return settings.model_copy(update={"voice_quality_gate": False})


def _clips(n: int) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p, _, _ in speech_clips("en", 4.0)[:n]]


async def _queue_voice(services, name: str, clips: int, max_steps: int, **params):
    """Through the same intake as /add_voice; `params` stand for an operator's training settings."""
    added = await add_voice(services, name, _clips(clips), ["words"] * clips, max_steps=max_steps)
    async with services.sessions.begin() as session:
        rec = await session.get(JobRecord, added.job.id)
        rec.params = {**rec.params, **params}
    return added.job


async def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := await predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return value


def _worker(services, kind: str = "voice", **options) -> RayWorker:
    s = services.settings
    handlers = {"stuck": "tests.ray_handlers:stuck", "crash": "tests.ray_handlers:crash"}
    return RayWorker(services.jobs, s.data_dir, db_url=s.db_url, artifacts=s.artifacts, kinds=[kind],
                     handlers=handlers if kind in handlers else None, cancel_poll_seconds=0.2, **options)


async def test_a_voice_trains_on_an_actor_and_resumes_elsewhere_when_its_actor_is_lost(cluster, services, tmp_path):
    store = services.settings.artifacts = f"file://{tmp_path / 'store'}"
    job = await _queue_voice(services, "anna", 3, max_steps=30, checkpoint_steps=5, max_seconds=300)
    run = asyncio.create_task(_worker(services).run_once())

    async def checkpointed():
        current = await services.jobs.get(job.id)
        _, checkpoint = await services.jobs.params(job.id)
        assert not run.done(), run.result()
        return current.step >= 10 and checkpoint.startswith(f"{store}/jobs/{job.id}/") and current

    reached = await _wait_for(checkpointed, 180, "the first checkpoints")
    assert reached.status is JobStatus.RUNNING and 0.05 < reached.progress < 1 and "step" in reached.log_tail
    stored = tmp_path / "store" / "jobs" / str(job.id)
    assert {"checkpoint.pt", "dataset.npz"} <= {p.name for p in stored.iterdir()}
    first = ray.get_actor(actor_name(job.id))
    ray.kill(first)  # the node is gone: no chance to save or report anything

    async def resumed():
        assert not run.done(), run.result()
        lines = (await services.jobs.get(job.id)).log_tail.splitlines()
        lost = [i for i, line in enumerate(lines) if line.startswith("worker lost at step")]
        again = [i for i, line in enumerate(lines) if "resumed from the checkpoint at step" in line]
        return lost and again and lines[lost[-1]:again[-1] + 1]

    # watched as it happens: the 20-line log tail moves on as training goes on
    after_loss = await _wait_for(resumed, 180, "the job to resume in a new actor")
    assert int(after_loss[-1].rsplit(" ", 1)[1]) >= 10  # the step count went on from the checkpoint, not from 0
    assert not any("features" in line for line in after_loss)  # the prepared data came back from the store

    done = await asyncio.wait_for(run, 240)
    assert done.status is JobStatus.SUCCEEDED, done.message
    assert done.step == 30 and done.progress == 1.0
    voice = await services.voices.get("anna")
    assert voice.ready and voice.params["version"] == 1 and Path(voice.params["artifact"]).is_file()
    await lifecycle.delete(services, "voice", "anna")
    assert not stored.exists()  # the job's files in the store go with the voice


async def test_a_cancel_in_the_jobs_table_stops_the_actor_within_5_s(cluster, services, tmp_path):
    services.settings.artifacts = str(tmp_path / "store")
    job = await _queue_voice(services, "bea", 2, max_steps=5000, max_seconds=600)
    run = asyncio.create_task(_worker(services).run_once())

    async def training():
        assert not run.done(), run.result()
        return (await services.jobs.get(job.id)).step >= 1

    await _wait_for(training, 180, "training to start")
    asked = time.monotonic()
    await services.jobs.cancel(job.id)
    finished = await asyncio.wait_for(run, 5)
    assert time.monotonic() - asked < 5
    assert finished.status is JobStatus.CANCELLED and finished.step < 5000
    with pytest.raises(ValueError):
        ray.get_actor(actor_name(job.id))  # no actor goes on training
    assert not (await services.voices.get("bea")).ready


async def test_an_actor_stuck_past_a_cancel_is_killed_within_5_s(cluster, services):
    job = await services.jobs.submit("stuck", "x", engine="lite", max_steps=10, gpu=None, params={})
    run = asyncio.create_task(_worker(services, "stuck").run_once())

    async def started():
        assert not run.done(), run.result()
        return (await services.jobs.get(job.id)).step == 1

    await _wait_for(started, 60, "the job to start")
    asked = time.monotonic()
    await services.jobs.cancel(job.id)
    finished = await asyncio.wait_for(run, 5)
    assert finished.status is JobStatus.CANCELLED and time.monotonic() - asked < 5
    with pytest.raises(ValueError):
        ray.get_actor(actor_name(job.id))


async def test_a_job_that_keeps_losing_its_actor_fails_saying_so(cluster, services):
    job = await services.jobs.submit("crash", "x", engine="lite", max_steps=10, gpu=None, params={})
    finished = await asyncio.wait_for(_worker(services, "crash", retries=1).run_once(), 120)
    assert finished.id == job.id and finished.status is JobStatus.FAILED
    assert finished.message.startswith("lost its worker 2 times"), finished.message
    assert "worker lost at step 1; resuming on another node" in finished.log_tail


async def test_a_job_asking_for_a_gpu_the_cluster_lacks_says_so_and_can_still_be_cancelled(cluster, services):
    job = await services.jobs.submit("stuck", "x", engine="lite", max_steps=10, gpu=0, params={})
    run = asyncio.create_task(_worker(services, "stuck").run_once())

    async def told():
        assert not run.done(), run.result()
        return "waiting for the cluster to offer 1 GPU" in (await services.jobs.get(job.id)).log_tail

    await _wait_for(told, 30, "the job to say what it waits for")
    asked = time.monotonic()
    await services.jobs.cancel(job.id)
    finished = await asyncio.wait_for(run, 5)
    assert finished.status is JobStatus.CANCELLED and time.monotonic() - asked < 5
