"""Training jobs on a Ray cluster (`DOPPEL_JOBS=ray`).

`doppel worker` claims jobs from the jobs table as always; each one runs in a Ray actor that asks the cluster for
the job's CPUs and, when the job asked for a GPU, a GPU. The actor runs the same handler through the same
`RunningJob`, with its own connection to the database: progress, checkpoints and results reach the jobs table
exactly as they do from a local worker, and its own watcher stops it within a second of a cancel (the worker
kills an actor that does not stop within `cancel_grace` seconds). A job's working files are pushed to the
artifact store (`DOPPEL_ARTIFACTS`) at every checkpoint; an actor lost with its node is replaced by a new one,
placed wherever the cluster has room, which pulls them back and resumes from the last checkpoint.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import socket
import tempfile
import traceback
from pathlib import Path

import ray
from ray.exceptions import ActorAlreadyExistsError, RayActorError
from sqlalchemy.engine import make_url

from bot.worker import RunningJob, Worker
from core.types import Job, JobStatus
from storage.artifacts import ArtifactStore
from storage.jobs import JobRepository

log = logging.getLogger(__name__)

def actor_name(job_id: int) -> str:
    return f"doppel-job-{job_id}"


@dataclasses.dataclass
class StagedJob(RunningJob):
    """A RunningJob whose folder is scratch space on this node: at each checkpoint the folder's new files go to the
    artifact store, and the jobs table records the store's copy, which any node can resume from."""

    store: ArtifactStore | None = None

    async def report(self, *, step: int, progress: float, eta_seconds: float | None = None,
                     checkpoint: str | None = None, log_line: str | None = None) -> None:
        stored = None
        if checkpoint is not None:
            assert self.store is not None  # given to every job run on the cluster
            await asyncio.to_thread(self.store.push, self.job.id, Path(self.work_dir))
            stored = f"{self.store.job_url(self.job.id)}/{Path(checkpoint).name}"
        try:
            await super().report(step=step, progress=progress, eta_seconds=eta_seconds, checkpoint=stored,
                                 log_line=log_line)
        finally:
            if checkpoint is not None:
                self.checkpoint = checkpoint  # the handler goes on with its local copy


class NodeWorker(Worker):
    """The local worker's way of running a job, inside an actor: only the job's folder differs."""

    def __init__(self, jobs: JobRepository, scratch: Path, store: ArtifactStore, handlers: dict[str, str],
                 cancel_poll_seconds: float) -> None:
        super().__init__(jobs, scratch, handlers=handlers, cancel_poll_seconds=cancel_poll_seconds)
        self.store = store

    async def context(self, job: Job, params: dict, checkpoint: str) -> RunningJob:
        work = self.data_dir / str(job.id)
        names = await asyncio.to_thread(self.store.pull, job.id, work)
        local = ""
        if self.store.holds(job.id, checkpoint):
            name = checkpoint.rsplit("/", 1)[-1]
            local = str(work / name) if name in names else ""
        elif checkpoint and Path(checkpoint).is_file():
            local = checkpoint  # left by a local worker on a disk this node shares
        return StagedJob(job, params, local, str(work), self.jobs, self.sessions, store=self.store)


def _missing_inputs(params: dict) -> str | None:
    """The recordings or the video a job reads live in DOPPEL_DATA_DIR, which every node must see at the same path."""
    for key in ("dir", "source"):
        if params.get(key) and not Path(params[key]).exists():
            return (f"{params[key]} cannot be read on the node {socket.gethostname()}: on a cluster DOPPEL_DATA_DIR "
                    "must be a folder every node mounts at the same path (see docs/cluster.md)")
    return None


class TrainingActor:
    """One job's run on one node. Created per attempt; `run` returns (status, message) when the handler ends."""

    def __init__(self, db_url: str, artifacts: str, handlers: dict[str, str], cancel_poll_seconds: float) -> None:
        self.db_url, self.artifacts, self.handlers = db_url, artifacts, handlers
        self.cancel_poll_seconds = cancel_poll_seconds

    async def run(self, job_id: int) -> tuple[str, str]:
        from storage.db import create_engine, session_factory

        gpus = ray.get_gpu_ids()
        if not gpus:
            os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a job that asked for no GPU trains on the CPU, even on a GPU node
        scratch = Path(tempfile.gettempdir()) / "doppel-jobs"
        engine = create_engine(self.db_url)
        try:
            jobs = JobRepository(session_factory(engine))
            # Ray shows the actor only the GPU it was given, as device 0
            job = dataclasses.replace(await jobs.get(job_id), gpu=0 if gpus else None)
            params, _ = await jobs.params(job_id)
            missing = _missing_inputs(params)
            if missing:
                return JobStatus.FAILED.value, missing
            worker = NodeWorker(jobs, scratch, ArtifactStore(self.artifacts), self.handlers, self.cancel_poll_seconds)
            status, message = await worker.run_job(job)
            return status.value, message
        except Exception as exc:  # the store or the database failing on this node fails the job, with why
            log.error("job %s failed on %s:\n%s", job_id, socket.gethostname(), traceback.format_exc())
            return JobStatus.FAILED.value, f"{type(exc).__name__}: {exc}"
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch / str(job_id), True)
            await engine.dispose()


class RayWorker(Worker):
    """Claims jobs like the local worker and runs each on the cluster, replacing actors lost with their nodes."""

    def __init__(self, jobs: JobRepository, data_dir: Path, *, db_url: str, artifacts: str = "",
                 num_cpus: float = 1.0, num_gpus: float = 1.0, retries: int = 3, cancel_grace: float = 2.0,
                 handlers: dict[str, str] | None = None, kinds: list[str] | None = None, poll_seconds: float = 1.0,
                 cancel_poll_seconds: float = 0.5) -> None:
        super().__init__(jobs, data_dir, handlers=handlers, kinds=kinds, poll_seconds=poll_seconds,
                         cancel_poll_seconds=cancel_poll_seconds)
        self.db_url = _absolute(db_url)
        # by default the jobs' files stay where a local worker keeps them (DATA_DIR/jobs/N), so either kind resumes them
        self.artifacts = artifacts or str(Path(data_dir).resolve())
        ArtifactStore(self.artifacts)  # an unknown URL scheme is refused now, not at the first checkpoint
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.retries, self.cancel_grace = retries, cancel_grace

    async def run_job(self, job: Job) -> tuple[JobStatus, str]:
        lost = 0
        await self._say_if_waiting(job)
        while True:
            try:
                actor = await self._start(job)
            except ActorAlreadyExistsError:
                return JobStatus.FAILED, f"another actor ({actor_name(job.id)}) is still running this job"
            try:
                status, message = await self._follow(job, actor)
                return JobStatus(status), message
            except RayActorError as exc:
                if await self.jobs.cancel_requested(job.id):
                    return JobStatus.CANCELLED, "cancelled"
                lost += 1
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                if lost > self.retries:
                    return JobStatus.FAILED, f"lost its worker {lost} times; the last time: {reason}"
                current = await self.jobs.get(job.id)
                log.warning("job %s: its actor was lost (%s); starting another", job.id, reason)
                await self.jobs.report(job.id, step=current.step, progress=current.progress,
                                       log_line=f"worker lost at step {current.step}; resuming on another node")
            finally:
                _kill(actor)

    async def _start(self, job: Job):
        options = dict(num_cpus=self.num_cpus, num_gpus=self.num_gpus if job.gpu is not None else 0,
                       name=actor_name(job.id), max_restarts=0, max_concurrency=4)
        for attempt in range(50):
            try:
                return _ACTOR.options(**options).remote(
                    self.db_url, self.artifacts, self.handlers, self.cancel_poll_seconds)
            except ActorAlreadyExistsError:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)  # the cluster has not yet forgotten the previous, dead actor of this job

    async def _say_if_waiting(self, job: Job) -> None:
        """A job asking for more than the cluster has waits (an autoscaler may add the node); the admin is told why."""
        wanted = {"CPU": self.num_cpus, "GPU": self.num_gpus if job.gpu is not None else 0}
        have = await asyncio.to_thread(ray.cluster_resources)
        short = [f"{amount:g} {kind}" for kind, amount in wanted.items() if amount and have.get(kind, 0) < amount]
        if short:
            current = await self.jobs.get(job.id)
            await self.jobs.report(job.id, step=current.step, progress=current.progress,
                                   log_line=f"waiting for the cluster to offer {' and '.join(short)} (DOPPEL_RAY_JOB_CPUS, "
                                            "DOPPEL_RAY_JOB_GPUS)")

    async def _follow(self, job: Job, actor) -> tuple[str, str]:
        """Wait for the actor's result; on a cancel give its own watcher `cancel_grace` seconds, then kill it."""
        result = asyncio.wrap_future(actor.run.remote(job.id).future())
        while True:
            done, _ = await asyncio.wait({result}, timeout=self.cancel_poll_seconds)
            if done:
                return result.result()
            if await self.jobs.cancel_requested(job.id):
                try:
                    return await asyncio.wait_for(asyncio.shield(result), self.cancel_grace)
                except (TimeoutError, RayActorError):
                    log.warning("job %s: the actor did not stop within %.0f s of the cancel; killed", job.id,
                                self.cancel_grace)
                    return JobStatus.CANCELLED.value, "cancelled"


_ACTOR = ray.remote(TrainingActor)


def _absolute(db_url: str) -> str:
    """A SQLite file named relative to this process's folder, named so that an actor started elsewhere finds it."""
    url = make_url(db_url)
    if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
        url = url.set(database=str(Path(url.database).resolve()))
    return url.render_as_string(hide_password=False)


def _kill(actor) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # already gone
        pass

