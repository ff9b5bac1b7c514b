"""Long polling that acknowledges an update only after it is handled.

aiogram's own polling moves the offset past an update as soon as it is read, so a crash mid-answer would
lose the message. Here the offset never passes the oldest update still being handled; updates Telegram
hands out again while they are in flight are skipped, and ones already answered are skipped by id.
Different users' updates are still handled at the same time.
"""
from __future__ import annotations

import asyncio
import logging

from aiogram.exceptions import TelegramConflictError, TelegramUnauthorizedError
from aiogram.methods import GetUpdates

from bot.telegram.delivery import Delivery

log = logging.getLogger(__name__)

# while some updates are in flight, Telegram answers getUpdates at once (they are still unacknowledged), so a
# long poll is impossible: between two polls the loop waits this long, or until an answer finishes. It bounds
# how long another user's new message waits to be picked up while the bot is busy.
BUSY_POLL_SECONDS = 1.0


class Poller:
    def __init__(self, delivery: Delivery, *, timeout: int = 25, allowed_updates: list[str] | None = None) -> None:
        self.delivery = delivery
        self.timeout = timeout
        self.allowed_updates = allowed_updates
        self._highest: int | None = None  # the newest update id seen in this run
        # handled in this run but still handed out again, because an older update in flight holds the offset back
        self._finished: set[int] = set()

    def _offset(self) -> int | None:
        unfinished = self.delivery.unfinished()
        if unfinished:
            return min(unfinished)
        return None if self._highest is None else self._highest + 1

    async def run(self, stop: asyncio.Event) -> None:
        bot = self.delivery.bot
        backoff = 1.0
        while not stop.is_set():
            busy = bool(self.delivery.in_flight)
            request = GetUpdates(offset=self._offset(), timeout=0 if busy else self.timeout,
                                 allowed_updates=self.allowed_updates)
            try:
                updates = await _until_stopped(bot(request, request_timeout=self.timeout + 10), stop)
            except (TelegramUnauthorizedError, TelegramConflictError):
                raise  # a wrong token, or a webhook is set: retrying cannot help
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Telegram or the network is down: try again, slower each time
                log.warning("getUpdates failed: %s; retrying in %.0f s", exc, backoff)
                await _sleep_unless(stop, backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if updates is None:
                break  # stopped while waiting
            backoff = 1.0
            fresh = 0
            for update in updates:
                self._highest = max(self._highest or 0, update.update_id)
                if update.update_id in self.delivery.in_flight or update.update_id in self._finished:
                    continue
                self.delivery.start(update).add_done_callback(
                    lambda task, uid=update.update_id: self._finish(uid, task))
                fresh += 1
            offset = self._offset()
            self._finished = {uid for uid in self._finished if offset is None or uid >= offset}
            if self.delivery.in_flight and not fresh:
                await self._wait_for_progress(stop)
        await self.acknowledge()

    def _finish(self, update_id: int, task: asyncio.Task) -> None:
        # an update to be delivered again (a passing failure) is left to be handed out again; a done one is not
        if not task.cancelled() and task.exception() is None and update_id not in self.delivery.retry:
            self._finished.add(update_id)

    async def _wait_for_progress(self, stop: asyncio.Event) -> None:
        tasks = list(self.delivery.in_flight.values())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([*tasks, stopper], timeout=BUSY_POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()

    async def acknowledge(self) -> None:
        """Tell Telegram what is done, so a restart is not handed it again (it would be skipped, but cost a lookup)."""
        offset = self._offset()
        if offset is not None:
            try:
                await self.delivery.bot(GetUpdates(offset=offset, timeout=0, limit=1))
            except Exception as exc:
                log.info("could not acknowledge updates before stopping: %s", exc)


async def _until_stopped(call, stop: asyncio.Event):
    request = asyncio.ensure_future(call)
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait([request, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if request in done:
        return request.result()
    request.cancel()
    await asyncio.gather(request, return_exceptions=True)
    return None


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
