"""One lane per user: a user's messages are answered in order, different users at the same time.

A user can stop their own running reply (/cancel); what waits behind it then runs. An optional cap on
replies running at once (all users together, `ReplySlots`) keeps a burst first-come-first-served, and
`on_wait` lets the channel tell a user their place in line.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Awaitable, Callable, TypeVar

from bot.common.slots import ReplySlots
from core.errors import BadInput, DoppelError

T = TypeVar("T")
OnWait = Callable[[int], Awaitable[None]]


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
    def __init__(self, max_waiting: int = 5, max_running: int | None = None, *, max_in_line: int = 100) -> None:
        self.max_waiting = max_waiting
        self.slots = ReplySlots(max_running or 0, max_in_line)
        self._lanes: dict[str, _Lane] = {}

    async def run(self, user: str, work: Callable[[], Awaitable[T]], on_wait: OnWait | None = None) -> T:
        """Run `work` after the user's earlier work. Raises ReplyCancelled if the user cancelled it, Busy if the
        line for a slot is full. `on_wait(place)` is called when the work has to wait for a slot, and each time
        its place in line changes."""
        lane = self._lanes.setdefault(user, _Lane())
        if lane.waiting >= self.max_waiting:
            raise QueueFull(lane.waiting)
        lane.waiting += 1
        try:
            async with lane.lock:
                task = asyncio.ensure_future(self._in_slot(work, on_wait))
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

    async def _in_slot(self, work: Callable[[], Awaitable[T]], on_wait: OnWait | None) -> T:
        # waiting for a free slot is part of the user's running work, so /cancel stops it there too
        ticket = self.slots.join()
        try:
            async for place in ticket.places():
                if on_wait is not None:
                    await on_wait(place)
            return await work()
        finally:
            ticket.leave()

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
