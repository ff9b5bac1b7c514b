"""The training worker: a process apart from the bots that runs queued jobs one at a time and resumes them after a crash.

Handlers are found by job kind and imported only when a job of that kind runs, so the bots never
load training code.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import threading
import traceback
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

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
    # the database, for handlers that record their result (a voice or avatar marked ready)
    sessions: object = None
    stop: threading.Event = field(default_factory=threading.Event)
    _hooks: list[Callable[[], None]] = field(default_factory=list)
    _started: float = field(default_factory=time.monotonic)
    _first_progress: float | None = None

    def check(self) -> None:
        if self.stop.is_set():
            raise JobCancelled()

    def on_cancel(self, hook: Callable[[], None]) -> None:
        self._hooks.append(hook)

    def run_cancel_hooks(self) -> None:
        for hook in list(self._hooks):
            try:
                hook()
            except Exception:
                log.exception("a cancel hook of job %s failed", self.job.id)

    async def report(self, *, step: int, progress: float, eta_seconds: float | None = None,
                     checkpoint: str | None = None, log_line: str | None = None) -> None:
        if checkpoint is not None:
            self.checkpoint = checkpoint
        if eta_seconds is None:
            eta_seconds = self._eta(progress, step)
        keep_going = await self.jobs.report(self.job.id, step=step, progress=progress, eta_seconds=eta_seconds,
                                            checkpoint=checkpoint, log_line=log_line)
        if not keep_going:
            self.stop.set()
            raise JobCancelled()

    def _eta(self, progress: float, step: int) -> float | None:
        """From the training stage's own pace in this run: a resumed job's ETA ignores the work done before the
        restart, and the preparation (reported at step 0: decoding, features, face tracking), whose pace says
        nothing about training's, is left out."""
        if step <= 0:
            return None
        if self._first_progress is None:
            self._first_progress = progress
            self._started = time.monotonic()
            return None
        done = progress - self._first_progress
        if done <= 1e-6:
            return None
        return (time.monotonic() - self._started) / done * max(0.0, 1.0 - progress)


def load_handler(kind: str, handlers: dict[str, str] | None = None) -> JobHandler:
    module, _, name = (handlers or HANDLERS)[kind].partition(":")
    return getattr(importlib.import_module(module), name)


class Worker:
    def __init__(self, jobs: JobRepository, data_dir: Path, handlers: dict[str, str] | None = None,
                 kinds: list[str] | None = None, poll_seconds: float = 1.0, sessions: object = None,
                 cancel_poll_seconds: float = 0.5) -> None:
        self.jobs = jobs
        self.sessions = sessions if sessions is not None else jobs.sessions
        self.data_dir = data_dir
        self.handlers = handlers or HANDLERS
        self.kinds = kinds
        self.poll_seconds = poll_seconds
        self.cancel_poll_seconds = cancel_poll_seconds
        self._recovered = False

    async def run_once(self) -> Job | None:
        """Run the oldest queued job to its end; None when the queue is empty."""
        if not self._recovered:
            # first, take back what a killed worker left half done: it resumes from its checkpoint
            self._recovered = True
            recovered = await self.jobs.recover()
            if recovered:
                log.info("requeued %d job(s) left running by a previous worker", recovered)
        job = await self.jobs.claim_next(self.kinds)
        if job is None:
            return None
        status, message = await self.run_job(job)
        return await self.jobs.finish(job.id, status, message)

    async def context(self, job: Job, params: dict, checkpoint: str) -> RunningJob:
        """What the handler gets: here, a folder of its own under the data folder."""
        work_dir = self.data_dir / "jobs" / str(job.id)
        work_dir.mkdir(parents=True, exist_ok=True)
        return RunningJob(job, params, checkpoint, str(work_dir), self.jobs, self.sessions)

    async def run_job(self, job: Job) -> tuple[JobStatus, str]:
        """Run a claimed job's handler in this process: (SUCCEEDED, its message), (CANCELLED, ...) or (FAILED, why).

        When this process itself is stopping, CancelledError goes through: the job stays 'running' and is
        resumed after a restart.
        """
        params, checkpoint = await self.jobs.params(job.id)
        ctx = await self.context(job, params, checkpoint)
        try:
            handler = load_handler(job.kind, self.handlers)
            task: asyncio.Future[str] = asyncio.ensure_future(handler(ctx))  # a handler is any awaitable of its message
            watcher = asyncio.create_task(self._watch(ctx, task))
            try:
                return JobStatus.SUCCEEDED, await task
            finally:
                watcher.cancel()
        except JobCancelled:
            return JobStatus.CANCELLED, "cancelled"
        except asyncio.CancelledError:
            if not ctx.stop.is_set():
                raise
            return JobStatus.CANCELLED, "cancelled"
        except Exception as exc:
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            return JobStatus.FAILED, getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"

    async def _watch(self, ctx: RunningJob, task: asyncio.Future[Any]) -> None:
        """Polls the job's cancel flag, so a cancel lands within a second whatever the handler is doing.

        The handler's task is cancelled at once (the job is marked cancelled and nothing it made is
        recorded); work it left in a thread stops at that thread's next `check()`, and its hooks stop
        containers or processes.
        """
        while not task.done():
            await asyncio.sleep(self.cancel_poll_seconds)
            if await self.jobs.cancel_requested(ctx.job.id):
                log.info("job %s: cancel requested", ctx.job.id)
                ctx.stop.set()
                task.cancel()
                await asyncio.to_thread(ctx.run_cancel_hooks)
                return

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        while not stop.is_set():
            if await self.run_once() is None:
                try:
                    await asyncio.wait_for(stop.wait(), self.poll_seconds)
                except TimeoutError:
                    pass
