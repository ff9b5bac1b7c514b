"""What a training job handler sees. Handlers live with their engines (RVC/, geneface/); the runner is in bot/worker.py."""
from __future__ import annotations

from typing import Awaitable, Callable, Protocol

from core.types import Job


class JobCancelled(Exception):
    """Raised by a handler when `report` says someone cancelled the job."""


class JobContext(Protocol):
    job: Job
    params: dict  # what the submitter stored with the job
    checkpoint: str  # the last checkpoint a previous run reported, "" on a first run: resume from it
    work_dir: str  # a folder that belongs to this job
    sessions: object  # the database's session factory, for handlers that record a result (an avatar made ready)

    async def report(self, *, step: int, progress: float, eta_seconds: float | None = None,
                     checkpoint: str | None = None, log_line: str | None = None) -> None:
        """Record progress; raises JobCancelled when the job was cancelled."""
        ...


# returns a one-line result for the user ("voice 'anna' is ready")
JobHandler = Callable[[JobContext], Awaitable[str]]
