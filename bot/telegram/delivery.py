"""Handling each update exactly once, whether it came by long polling or by webhook, by one bot or several replicas.

An update counts as handled only once its handler has finished (answer sent) and its id is stored; until
then it stays in the bot's inbox (`pending_updates`), so a crash in between hands it out again, and the stored
ids keep a re-delivered update that was answered before the crash from being answered twice. An update that
fails for a passing reason is tried again only if nothing of its answer was sent.

Replicas sharing one database share the inbox: the replica answering an update holds a claim on it, renewed
while it works, so a second delivery of the update to another replica is left to the first; when a replica dies
mid-answer its claim runs out and another replica's sweep (`Sweeper`) answers the update.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from contextlib import suppress
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update

from bot.common.claims import keep_claim
from bot.telegram.errors import RETRYABLE
from bot.telegram.sending import SendRetries, current_update
from storage.owners import replica_id
from storage.updates import HandledUpdates

log = logging.getLogger(__name__)


def _forget(running: dict[int, Any], key: int, _done: object) -> None:
    """A finished task leaves the table of running ones (a done-callback, bound to its key when it started)."""
    running.pop(key, None)


class Delivery:
    def __init__(self, bot: Bot, dispatcher: Dispatcher, handled: HandledUpdates, *, max_attempts: int = 3,
                 sends: SendRetries | None = None, lease: float = 30.0) -> None:
        self.bot = bot
        self.dispatcher = dispatcher
        self.handled = handled
        self.max_attempts = max_attempts
        self.sends = sends
        self.holder = replica_id()  # this replica, in the inbox's claims
        self.lease = lease  # seconds a claim lasts unless renewed; renewed every third of it
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
            task.add_done_callback(functools.partial(_forget, self.in_flight, update.update_id))
        return task

    async def _handle(self, update: Update) -> bool:
        """True once the update is handled for good, or in another replica's hands; False if it should be tried again."""
        uid = update.update_id
        if await self.handled.seen(uid):
            await self.handled.discard(uid)  # a repeated delivery of an answered update
            return True
        if not await self.handled.claim(uid, self.holder, self.lease):
            # another replica is answering it; should that replica die, its claim runs out and a sweep takes it
            return True
        answering = asyncio.current_task()
        assert answering is not None
        keeper = asyncio.create_task(keep_claim(self.handled, uid, self.holder, self.lease, answering))
        try:
            return await self._answer(update)
        finally:
            keeper.cancel()
            with suppress(asyncio.CancelledError):
                await keeper

    async def _answer(self, update: Update) -> bool:
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
                await self.handled.release(update.update_id, self.holder)
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


class Sweeper:
    """Every few seconds, takes the inbox's updates that nobody holds: those of a replica that died mid-answer
    (its claim ran out) and those whose answer failed for a passing reason. Runs beside webhook mode, where
    updates arrive at any replica; with one bot it is what retries after a crash."""

    def __init__(self, delivery: Delivery, every: float | None = None) -> None:
        self.delivery = delivery
        self.every = every if every is not None else delivery.lease / 3

    async def run(self, stop: asyncio.Event) -> None:
        d = self.delivery
        while not stop.is_set():
            try:
                for payload in await d.handled.due(d.holder, d.lease):
                    d.start(Update.model_validate(payload, context={"bot": d.bot}))
            except Exception as exc:  # the database is briefly unreachable: the next sweep tries again
                log.warning("could not sweep the update inbox: %s", exc)
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every)
