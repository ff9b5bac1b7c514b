"""What a training job handler sees. Handlers live with their engines (RVC/, geneface/); the runner is in bot/worker.py."""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Protocol

from core.types import Job


class JobCancelled(Exception):
    """Raised by a handler when `report` says someone cancelled the job."""


class JobContext(Protocol):
    job: Job
    params: dict[str, Any]  # what the submitter stored with the job
    checkpoint: str  # the last checkpoint a previous run reported, "" on a first run: resume from it
    work_dir: str  # a folder that belongs to this job
    sessions: object  # the database's session factory, for handlers that record a result (an avatar made ready)

    async def report(self, *, step: int, progress: float, eta_seconds: float | None = None,
                     checkpoint: str | None = None, log_line: str | None = None) -> None:
        """Record progress; raises JobCancelled when the job was cancelled."""
        ...

    def check(self) -> None:
        """Raises JobCancelled once a cancel was requested. Long loops in worker threads (feature extraction,
        face tracking, training steps) call it at every item, so they stop within one item of a cancel."""
        ...

    def on_cancel(self, hook: Callable[[], None]) -> None:
        """`hook` runs (in a thread) as soon as a cancel is requested: stop a container, kill a process."""
        ...


# returns a one-line result for the user ("voice 'anna' is ready")
JobHandler = Callable[[JobContext], Awaitable[str]]
