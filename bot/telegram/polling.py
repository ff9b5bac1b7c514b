"""Long polling that never loses an update, and never answers one twice.

aiogram's own polling moves the offset past an update as soon as it is read, so a crash mid-answer would
lose the message. Here each update is written to the bot's inbox (`pending_updates`) before the next
`getUpdates` acknowledges it; the inbox is read again at start, and an update leaves it only when its answer
is out (its id then goes to `handled_updates`, which keeps a re-delivered update from being answered twice).
Acknowledging at once is what lets every poll be a long poll: Telegram answers `getUpdates` immediately while
any update at or past the offset is unacknowledged, which made a busy bot poll hundreds of times a second.
Different users' updates are still handled at the same time.
"""
from __future__ import annotations

import asyncio
import logging

from aiogram.exceptions import TelegramConflictError, TelegramUnauthorizedError
from aiogram.methods import GetUpdates
from aiogram.types import Update

from bot.telegram.delivery import Delivery

log = logging.getLogger(__name__)

# an update that failed for a passing reason (Telegram unreachable, nothing of its answer sent) is tried again after
RETRY_SECONDS = 5.0


class Poller:
    def __init__(self, delivery: Delivery, *, timeout: int = 25, allowed_updates: list[str] | None = None) -> None:
        self.delivery = delivery
        self.timeout = timeout
        self.allowed_updates = allowed_updates
        self._highest: int | None = None  # the newest update id seen in this run
        self._stop = asyncio.Event()

    def _offset(self) -> int | None:
        return None if self._highest is None else self._highest + 1

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        bot = self.delivery.bot
        for payload in await self.delivery.handled.pending():  # taken in before a crash or a stop, not yet answered
            self._start(Update.model_validate(payload, context={"bot": bot}))
        backoff = 1.0
        while not stop.is_set():
            request = GetUpdates(offset=self._offset(), timeout=self.timeout, allowed_updates=self.allowed_updates)
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
            for update in updates:
                self._highest = max(self._highest or 0, update.update_id)
                if update.update_id in self.delivery.in_flight:
                    continue
                # kept before the next getUpdates acknowledges it: from here a crash cannot lose it
                await self.delivery.handled.keep(update.update_id, update.model_dump(mode="json", by_alias=True, exclude_none=True))
                self._start(update)
        await self.acknowledge()

    def _start(self, update: Update) -> None:
        self.delivery.start(update).add_done_callback(lambda task: self._after(update, task))

    def _after(self, update: Update, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is not None or task.result() is not False or self._stop.is_set():
            return
        asyncio.get_running_loop().call_later(RETRY_SECONDS, self._again, update)

    def _again(self, update: Update) -> None:
        if not self._stop.is_set():
            self._start(update)

    async def acknowledge(self) -> None:
        """Tell Telegram what was taken in, so a restart is not handed it again (it would be skipped, but cost a lookup)."""
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
    except TimeoutError:
        pass
