"""Following a training job: call back whenever what a user would see changes, until the job ends.

Channels use it to keep one status message edited ("42%, about 3 min left" ... "ready").
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Sequence

from core.types import Job, JobStatus
from storage.jobs import JobRepository

OnChange = Callable[[Job], Awaitable[None]]
RECENT_JOBS = 15  # fifteen status lines fit in one Discord message (2,000 characters)


def describe(job: Job) -> str:
    what = {"avatar": "Avatar", "voice": "Voice"}.get(job.kind, job.kind.capitalize())
    head = f"{what} '{job.target}' (job {job.id})"
    if job.status is JobStatus.QUEUED:
        return f"{head}: waiting for the trainer to start."
    if job.status is JobStatus.RUNNING:
        steps = f", step {job.step}/{job.max_steps}" if job.max_steps else ""
        eta = f", about {format_eta(job.eta_seconds)} left" if job.eta_seconds else ""
        return f"{head}: training {job.progress:.0%}{steps}{eta}."
    if job.status is JobStatus.SUCCEEDED:
        return f"{head}: done. {job.message}".rstrip()
    if job.status is JobStatus.CANCELLED:
        return f"{head}: cancelled."
    return f"{head}: failed. {job.message}".rstrip()


def recent_jobs(newest_first: Sequence[Job]) -> str:
    """The /jobs answer: the latest jobs (JobRepository.list gives them newest first), one status line each."""
    return "\n".join(describe(job) for job in newest_first[:RECENT_JOBS]) or "No training jobs yet."


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


async def follow_job(jobs: JobRepository, job_id: int, on_change: OnChange, *, interval: float = 3.0,
                     min_progress_step: float = 0.01) -> Job:
    """Poll the job and call `on_change` when its status, message or visible progress changed; return the final job.

    Small progress moves are held back (and the poll interval keeps a floor) because chat platforms limit how
    often one message may be edited.
    """
    shown: tuple | None = None
    while True:
        job = await jobs.get(job_id)
        view = (job.status, job.message, job.progress, job.eta_seconds)
        if shown is None or _worth_showing(shown, view, min_progress_step):
            await on_change(job)
            shown = view
        if job.status.finished:
            return job
        await asyncio.sleep(interval)


def _worth_showing(old: tuple, new: tuple, step: float) -> bool:
    if old[0] != new[0] or old[1] != new[1]:
        return True
    return abs(new[2] - old[2]) >= step
