"""The training worker: a process apart from the bots that runs queued jobs one at a time and resumes them after a crash.

Handlers are found by job kind and imported only when a job of that kind runs, so the bots never
load training code.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import traceback
from dataclasses import dataclass
from pathlib import Path

from core.jobs import JobCancelled, JobHandler
from core.types import Job, JobStatus
from storage.jobs import JobRepository

log = logging.getLogger(__name__)

# kind → "module:function"
HANDLERS = {
    "voice": "RVC.jobs:train_voice",
    "avatar": "geneface.jobs:train_avatar",
}


@dataclass
class RunningJob:
    """The JobContext a handler gets."""

    job: Job
    params: dict
    checkpoint: str
    work_dir: str
    jobs: JobRepository

    async def report(self, *, step: int, progress: float, eta_seconds: float | None = None,
                     checkpoint: str | None = None, log_line: str | None = None) -> None:
        if checkpoint is not None:
            self.checkpoint = checkpoint
        keep_going = await self.jobs.report(self.job.id, step=step, progress=progress, eta_seconds=eta_seconds,
                                            checkpoint=checkpoint, log_line=log_line)
        if not keep_going:
            raise JobCancelled()


def load_handler(kind: str, handlers: dict[str, str] | None = None) -> JobHandler:
    module, _, name = (handlers or HANDLERS)[kind].partition(":")
    return getattr(importlib.import_module(module), name)


class Worker:
    def __init__(self, jobs: JobRepository, data_dir: Path, handlers: dict[str, str] | None = None,
                 kinds: list[str] | None = None, poll_seconds: float = 1.0) -> None:
        self.jobs = jobs
        self.data_dir = data_dir
        self.handlers = handlers or HANDLERS
        self.kinds = kinds
        self.poll_seconds = poll_seconds

    async def run_once(self) -> Job | None:
        """Run the oldest queued job to its end; None when the queue is empty."""
        job = await self.jobs.claim_next(self.kinds)
        if job is None:
            return None
        params, checkpoint = await self.jobs.params(job.id)
        work_dir = self.data_dir / "jobs" / str(job.id)
        work_dir.mkdir(parents=True, exist_ok=True)
        ctx = RunningJob(job, params, checkpoint, str(work_dir), self.jobs)
        try:
            handler = load_handler(job.kind, self.handlers)
            message = await handler(ctx)
            return await self.jobs.finish(job.id, JobStatus.SUCCEEDED, message)
        except JobCancelled:
            return await self.jobs.finish(job.id, JobStatus.CANCELLED, "cancelled")
        except Exception as exc:
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            text = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            return await self.jobs.finish(job.id, JobStatus.FAILED, text)

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        recovered = await self.jobs.recover()
        if recovered:
            log.info("requeued %d job(s) left running by a previous worker", recovered)
        stop = stop or asyncio.Event()
        while not stop.is_set():
            if await self.run_once() is None:
                try:
                    await asyncio.wait_for(stop.wait(), self.poll_seconds)
                except asyncio.TimeoutError:
                    pass
