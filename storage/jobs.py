"""Training jobs (avatars and voices) kept in the database, so a restart resumes them."""
from __future__ import annotations

import builtins
from datetime import datetime, UTC
from typing import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import BadInput, JobNotFound
from core.types import Job, JobStatus
from storage.models import JobRecord
from storage.owners import alive, on_this_host, process_id
from storage.rows import rowcount


def worker_id() -> str:
    return process_id()


def _to_job(rec: JobRecord) -> Job:
    return Job(
        id=rec.id, kind=rec.kind, target=rec.target, status=JobStatus(rec.status), engine=rec.engine,
        progress=rec.progress, step=rec.step, max_steps=rec.max_steps, eta_seconds=rec.eta_seconds, gpu=rec.gpu,
        message=rec.message, log_tail=rec.log_tail, notify_chat=rec.notify_chat,
    )


class JobRepository:
    """Implements core.ports.JobQueue; the worker side claims, reports and finishes jobs."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def submit(self, kind: str, target: str, *, engine: str, max_steps: int, gpu: int | None,
                     params: dict, notify_chat: str | None = None) -> Job:
        async with self.sessions.begin() as session:
            rec = JobRecord(kind=kind, target=target, engine=engine, max_steps=max_steps, gpu=gpu, params=params,
                            notify_chat=notify_chat, status=JobStatus.QUEUED.value)
            session.add(rec)
            await session.flush()
            return _to_job(rec)

    async def get(self, job_id: int) -> Job:
        async with self.sessions() as session:
            rec = await session.get(JobRecord, job_id)
            if rec is None:
                raise JobNotFound()
            return _to_job(rec)

    async def params(self, job_id: int) -> tuple[dict, str]:
        async with self.sessions() as session:
            rec = await session.get(JobRecord, job_id)
            if rec is None:
                raise JobNotFound()
            return dict(rec.params or {}), rec.checkpoint

    async def list(self, statuses: Sequence[JobStatus] | None = None) -> builtins.list[Job]:
        stmt = select(JobRecord).order_by(JobRecord.id.desc())
        if statuses:
            stmt = stmt.where(JobRecord.status.in_([s.value for s in statuses]))
        async with self.sessions() as session:
            return [_to_job(r) for r in (await session.scalars(stmt)).all()]

    async def cancel(self, job_id: int) -> Job:
        async with self.sessions.begin() as session:
            rec = await session.get(JobRecord, job_id)
            if rec is None:
                raise JobNotFound()
            if rec.status == JobStatus.QUEUED.value:
                rec.status = JobStatus.CANCELLED.value
                rec.message = "cancelled before it started"
            elif rec.status == JobStatus.RUNNING.value:
                # the worker's watcher sees the flag within a second and stops the job (bot/worker.py)
                rec.cancel_requested = True
            return _to_job(rec)

    async def cancel_requested(self, job_id: int) -> bool:
        """Whether someone asked to stop the job: the worker's watcher polls this, so a cancel lands within a second."""
        async with self.sessions() as session:
            rec = await session.get(JobRecord, job_id)
            return rec is None or rec.cancel_requested or rec.status == JobStatus.CANCELLED.value

    async def latest(self, kind: str, target: str) -> Job | None:
        async with self.sessions() as session:
            rec = await session.scalar(select(JobRecord).where(JobRecord.kind == kind, JobRecord.target == target)
                                       .order_by(JobRecord.id.desc()).limit(1))
            return _to_job(rec) if rec else None

    async def for_target(self, kind: str, target: str) -> builtins.list[Job]:
        async with self.sessions() as session:
            recs = await session.scalars(select(JobRecord).where(JobRecord.kind == kind, JobRecord.target == target)
                                         .order_by(JobRecord.id))
            return [_to_job(r) for r in recs.all()]

    async def resubmit(self, job_id: int) -> Job:
        """A failed or cancelled job queued again as a new job with the same parameters (its own fresh start)."""
        async with self.sessions.begin() as session:
            old = await session.get(JobRecord, job_id)
            if old is None:
                raise JobNotFound()
            if old.status not in (JobStatus.FAILED.value, JobStatus.CANCELLED.value):
                raise BadInput(f"Job {job_id} is {old.status}; only a failed or cancelled job can be retried.")
            rec = JobRecord(kind=old.kind, target=old.target, engine=old.engine, max_steps=old.max_steps, gpu=old.gpu,
                            params=dict(old.params or {}), notify_chat=old.notify_chat, status=JobStatus.QUEUED.value,
                            message=f"retry of job {job_id}")
            session.add(rec)
            await session.flush()
            return _to_job(rec)

    async def retarget(self, kind: str, old: str, new: str, params: dict[int, dict]) -> None:
        """After a rename: the jobs follow the new name, with their parameters' paths moved (`params` by job id)."""
        async with self.sessions.begin() as session:
            for rec in (await session.scalars(select(JobRecord).where(JobRecord.kind == kind, JobRecord.target == old))).all():
                rec.target = new
                if rec.id in params:
                    rec.params = params[rec.id]

    async def params_of(self, kind: str, target: str) -> dict[int, dict]:
        async with self.sessions() as session:
            recs = await session.scalars(select(JobRecord).where(JobRecord.kind == kind, JobRecord.target == target))
            return {r.id: dict(r.params or {}) for r in recs.all()}

    async def claim_next(self, kinds: Sequence[str] | None = None, worker: str | None = None) -> Job | None:
        """Take the oldest queued job for `worker` ("host:pid"); None only when none is queued. Safe with many
        workers on one database. A job left 'running' by a dead worker is requeued by `recover()`."""
        pick = select(JobRecord.id).where(JobRecord.status == JobStatus.QUEUED.value).order_by(JobRecord.id).limit(1)
        if kinds:
            pick = pick.where(JobRecord.kind.in_(list(kinds)))
        # PostgreSQL: the row stays locked to this transaction, and other workers' SELECTs pass over it to the next
        # queued job instead of waiting for it (SKIP LOCKED). SQLite has no row locks (the clause is left out) but
        # runs one writer at a time: the status check in the UPDATE sees a job another worker took in between,
        # and the next queued one is tried.
        pick = pick.with_for_update(skip_locked=True)
        while True:
            async with self.sessions.begin() as session:
                job_id = await session.scalar(pick)
                if job_id is None:
                    return None
                claimed = await session.execute(
                    update(JobRecord).where(JobRecord.id == job_id, JobRecord.status == JobStatus.QUEUED.value)
                    .values(status=JobStatus.RUNNING.value, worker=worker or worker_id(), cancel_requested=False,
                            updated_at=datetime.now(UTC))
                )
                if rowcount(claimed) == 1:
                    rec = await session.get(JobRecord, job_id)
                    assert rec is not None  # claimed just now, in this transaction
                    return _to_job(rec)

    async def recover(self, stale_seconds: float = 600.0) -> int:
        """At worker start: requeue jobs still 'running' whose worker is gone, to resume from their checkpoints.

        A worker on this host is gone when its process is; one elsewhere when it has not reported for
        `stale_seconds`. A job of a live worker is left alone, so two workers can share one database.
        """
        now = datetime.now(UTC)
        async with self.sessions.begin() as session:
            running = (await session.scalars(select(JobRecord).where(JobRecord.status == JobStatus.RUNNING.value))).all()
            count, me = 0, worker_id()
            for rec in running:
                if rec.worker == me:
                    continue
                updated = rec.updated_at if rec.updated_at.tzinfo else rec.updated_at.replace(tzinfo=UTC)
                stale = (now - updated).total_seconds() > stale_seconds
                if alive(rec.worker) and not (stale and not on_this_host(rec.worker)):
                    continue
                rec.status, rec.message, rec.worker = JobStatus.QUEUED.value, "resumed after a restart", None
                count += 1
            return count

    async def report(self, job_id: int, *, step: int, progress: float, eta_seconds: float | None = None,
                     checkpoint: str | None = None, log_line: str | None = None) -> bool:
        """Record progress; returns False when someone asked to cancel the job."""
        async with self.sessions.begin() as session:
            rec = await session.get(JobRecord, job_id)
            if rec is None:
                raise JobNotFound()
            rec.step, rec.progress, rec.eta_seconds = step, max(0.0, min(1.0, progress)), eta_seconds
            if checkpoint is not None:
                rec.checkpoint = checkpoint
            if log_line:
                rec.log_tail = "\n".join((rec.log_tail.splitlines() + [log_line])[-20:])
            return not rec.cancel_requested

    async def finish(self, job_id: int, status: JobStatus, message: str = "") -> Job:
        async with self.sessions.begin() as session:
            rec = await session.get(JobRecord, job_id)
            if rec is None:
                raise JobNotFound()
            rec.status, rec.message = status.value, message
            if status is JobStatus.SUCCEEDED:
                rec.progress, rec.eta_seconds = 1.0, 0.0
            return _to_job(rec)
