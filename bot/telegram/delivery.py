"""Handling each update exactly once, whether it came by long polling or by webhook.

An update counts as handled only once its handler has finished (answer sent) and its id is stored; until
then it stays in the bot's inbox (long polling) or unacknowledged (a webhook), so a crash in between hands it
out again, and the stored ids keep a re-delivered update that was answered before the crash from being
answered twice. An update that fails for a passing reason is tried again only if nothing of its answer was sent.
"""
from __future__ import annotations

import asyncio
import logging

from aiogram import Bot, Dispatcher
from aiogram.types import Update

from bot.telegram.errors import RETRYABLE
from bot.telegram.sending import SendRetries, current_update
from storage.updates import HandledUpdates

log = logging.getLogger(__name__)


class Delivery:
    def __init__(self, bot: Bot, dispatcher: Dispatcher, handled: HandledUpdates, *, max_attempts: int = 3,
                 sends: SendRetries | None = None) -> None:
        self.bot = bot
        self.dispatcher = dispatcher
        self.handled = handled
        self.max_attempts = max_attempts
        self.sends = sends
        self.in_flight: dict[int, asyncio.Task] = {}
        self._attempts: dict[int, int] = {}

    async def seen(self, update_id: int) -> bool:
        return await self.handled.seen(update_id)

    def start(self, update: Update) -> asyncio.Task:
        """Begin handling (or join the handling already under way) and return the task that finishes it."""
        task = self.in_flight.get(update.update_id)
        if task is None:
            task = asyncio.create_task(self._handle(update), name=f"update-{update.update_id}")
            self.in_flight[update.update_id] = task
            task.add_done_callback(lambda _t, uid=update.update_id: self.in_flight.pop(uid, None))
        return task

    async def _handle(self, update: Update) -> bool:
        """True once the update is handled for good; False if it should be delivered again."""
        if await self.handled.seen(update.update_id):
            return True
        current_update.set(update.update_id)
        try:
            await self.dispatcher.feed_update(self.bot, update)
        except RETRYABLE as exc:
            attempts = self._attempts.get(update.update_id, 0) + 1
            self._attempts[update.update_id] = attempts
            if self.sends is not None and self.sends.has_delivered(update.update_id):
                # part of the answer is already with the user: handling it again would make a second, different one
                log.error("update %s: a send failed after its retries, with part of the answer delivered: %s",
                          update.update_id, exc)
            elif attempts < self.max_attempts:
                log.warning("update %s: Telegram unreachable (%s); will retry", update.update_id, exc)
                return False
            log.error("update %s: giving up after %d attempts: %s", update.update_id, attempts, exc)
        except Exception:
            # a bug, not a crash: answering it again would fail again, so it is recorded as done
            log.exception("update %s failed", update.update_id)
        self._attempts.pop(update.update_id, None)
        if self.sends is not None:
            self.sends.forget(update.update_id)
        await self.handled.mark(update.update_id)
        return True

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the updates being handled (on a graceful stop)."""
        tasks = list(self.in_flight.values())
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def abort(self) -> None:
        tasks = list(self.in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
