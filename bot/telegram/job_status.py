"""One status message per training job, edited as the job moves (progress %, ETA, the final result)."""
from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest

from bot.common.progress import describe, follow_job
from core.types import Job, JobStatus
from storage.jobs import JobRepository

log = logging.getLogger(__name__)


def notify_target(chat_id: int) -> str:
    return f"tg:{chat_id}"


def _forget(running: dict[int, Any], key: int, _done: object) -> None:
    """A finished task leaves the table of running ones (a done-callback, bound to its key when it started)."""
    running.pop(key, None)


class JobStatusMessages:
    def __init__(self, bot: Bot, jobs: JobRepository, interval: float = 3.0) -> None:
        self.bot = bot
        self.jobs = jobs
        self.interval = interval
        self._tasks: dict[int, asyncio.Task] = {}

    def follow(self, chat_id: int, job: Job) -> None:
        if job.id not in self._tasks:
            task = asyncio.create_task(self._follow(chat_id, job.id), name=f"job-status-{job.id}")
            self._tasks[job.id] = task
            task.add_done_callback(functools.partial(_forget, self._tasks, job.id))

    async def resume(self) -> int:
        """After a restart: a fresh status message for every unfinished job a Telegram chat asked for."""
        count = 0
        for job in await self.jobs.list([JobStatus.QUEUED, JobStatus.RUNNING]):
            target = job.notify_chat or ""
            if target.startswith("tg:") and target[3:].lstrip("-").isdigit():
                self.follow(int(target[3:]), job)
                count += 1
        return count

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, chat_id: int, job_id: int) -> None:
        message = None
        shown = ""

        async def show(job: Job) -> None:
            nonlocal message, shown
            text = describe(job)
            if text == shown:
                return  # Telegram refuses an edit that changes nothing
            if message is None:
                message = await self.bot.send_message(chat_id, text, parse_mode=None)
            else:
                try:
                    await message.edit_text(text, parse_mode=None)
                except TelegramBadRequest as exc:
                    if "not modified" not in exc.message:
                        raise
            shown = text

        try:
            await follow_job(self.jobs, job_id, show, interval=self.interval)
        except TelegramAPIError as exc:
            log.warning("job %s: status message stopped: %s", job_id, exc)
