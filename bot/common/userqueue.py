"""One lane per user: a user's messages are answered in order, different users at the same time.

A user can stop their own running reply (/cancel); what waits behind it then runs. An optional cap on
replies running at once (all users together) keeps a burst first-come-first-served: with the engines
CPU-bound, twenty replies sharing the cores all finish late, while a few at a time finish in turn.
"""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Awaitable, Callable, TypeVar

from core.errors import BadInput, DoppelError

T = TypeVar("T")


class ReplyCancelled(DoppelError):
    code = "reply_cancelled"
    default_message = "Stopped."


class QueueFull(BadInput):
    code = "queue_full"

    def __init__(self, waiting: int) -> None:
        super().__init__(f"You already have {waiting} messages waiting for an answer. Please wait for them first.")


@dataclass
class _Lane:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0
    running: asyncio.Task | None = None


class UserQueue:
    def __init__(self, max_waiting: int = 5, max_running: int | None = None) -> None:
        self.max_waiting = max_waiting
        self._slots = asyncio.Semaphore(max_running) if max_running else None
        self._lanes: dict[str, _Lane] = {}

    async def run(self, user: str, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` after the user's earlier work. Raises ReplyCancelled if the user cancelled it."""
        lane = self._lanes.setdefault(user, _Lane())
        if lane.waiting >= self.max_waiting:
            raise QueueFull(lane.waiting)
        lane.waiting += 1
        try:
            async with lane.lock:
                task = asyncio.ensure_future(self._in_slot(work))
                lane.running = task
                try:
                    # shield: a user's /cancel cancels `task`; cancelling the caller still cancels it below
                    return await asyncio.shield(task)
                except asyncio.CancelledError:
                    if task.cancelled() and not _being_cancelled():
                        raise ReplyCancelled() from None
                    task.cancel()
                    raise
                finally:
                    lane.running = None
        finally:
            lane.waiting -= 1
            if lane.waiting == 0 and self._lanes.get(user) is lane:
                del self._lanes[user]

    async def _in_slot(self, work: Callable[[], Awaitable[T]]) -> T:
        # waiting for a free slot is part of the user's running work, so /cancel stops it there too
        async with self._slots if self._slots is not None else contextlib.nullcontext():
            return await work()

    def cancel(self, user: str) -> bool:
        """Stop the user's running work; True if there was some."""
        lane = self._lanes.get(user)
        if lane is None or lane.running is None or lane.running.done():
            return False
        lane.running.cancel()
        return True

    def busy(self, user: str) -> bool:
        lane = self._lanes.get(user)
        return lane is not None and lane.running is not None and not lane.running.done()

    def stats(self) -> dict[str, int]:
        return {
            "users_waiting": len(self._lanes),
            "replies_running": sum(1 for lane in self._lanes.values() if lane.running and not lane.running.done()),
            "replies_waiting": sum(lane.waiting for lane in self._lanes.values()),
        }


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
