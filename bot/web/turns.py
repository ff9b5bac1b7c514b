"""Chat turns that live apart from the connection that asked for them.

A turn's events are kept as they are made. The page reads them over one connection; when that connection
drops, the page re-attaches by the turn's id and gets the rest, and a repeated post of the same turn joins it:
what was delivered is never made again, so a visitor never gets a second, different answer. A turn nobody
follows any more (the tab was closed) is cancelled after a grace period, which leaves no history behind.
"""
from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable

from core.errors import DoppelError

TURN_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


@dataclass(eq=False)
class Turn:
    user: str
    id: str
    events: list[bytes] = field(default_factory=list)
    error: DoppelError | None = None  # what ended it, when it failed
    done: bool = False
    followers: int = 0
    task: asyncio.Task | None = None
    finished_at: float | None = None
    alone_since: float = field(default_factory=time.monotonic)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, event: bytes) -> None:
        self.events.append(event)
        self._changed.set()

    def fail(self, error: DoppelError, event: bytes) -> None:
        self.error = error
        self.add(event)

    def finish(self) -> None:
        self.done = True
        self.finished_at = time.monotonic()
        self._changed.set()

    async def first_event(self) -> None:
        while not self.events and not self.done:
            self._changed.clear()
            await self._changed.wait()

    async def _next_change(self, seen: int) -> None:
        while len(self.events) <= seen and not self.done:
            self._changed.clear()
            await self._changed.wait()


Producer = Callable[[Turn], Awaitable[None]]


class TurnBook:
    """The turns of the last minutes, by (user, id); finished ones are dropped after `keep` seconds."""

    def __init__(self, *, keep: float = 300.0, grace: float = 15.0, max_turns: int = 2000) -> None:
        self.keep = keep
        self.grace = grace
        self.max_turns = max_turns
        self._turns: OrderedDict[tuple[str, str], Turn] = OrderedDict()

    def get(self, user: str, turn_id: str) -> Turn | None:
        return self._turns.get((user, turn_id))

    def start(self, user: str, turn_id: str, produce: Producer) -> Turn:
        self._prune()
        turn = Turn(user, turn_id)
        self._turns[(user, turn_id)] = turn

        async def run() -> None:
            try:
                await produce(turn)
            finally:
                turn.finish()

        turn.task = asyncio.create_task(run())
        # nobody has attached yet: the grace period starts now, as if a follower had just left
        self._watch(turn)
        return turn

    async def first_event(self, turn: Turn) -> None:
        """Waits for the turn's first event; whoever waits for it follows the turn meanwhile."""
        turn.followers += 1
        try:
            await turn.first_event()
        finally:
            turn.followers -= 1
            self._watch(turn)

    async def follow(self, turn: Turn, after: int = 0) -> AsyncIterator[bytes]:
        """The turn's events from index `after` on, as they come, until it is done."""
        turn.followers += 1
        seen = max(0, after)
        try:
            while True:
                while seen < len(turn.events):
                    yield turn.events[seen]
                    seen += 1
                if turn.done:
                    return
                await turn._next_change(seen)
        finally:
            turn.followers -= 1
            self._watch(turn)

    def _watch(self, turn: Turn) -> None:
        if turn.followers == 0 and not turn.done:
            turn.alone_since = time.monotonic()
            asyncio.get_running_loop().call_later(self.grace, self._abandon_if_alone, turn)

    def _abandon_if_alone(self, turn: Turn) -> None:
        alone = time.monotonic() - turn.alone_since >= self.grace - 0.01
        if turn.followers == 0 and alone and not turn.done and turn.task is not None:
            turn.task.cancel()

    def _prune(self) -> None:
        now = time.monotonic()
        for key, turn in list(self._turns.items()):
            if turn.done and turn.finished_at is not None and now - turn.finished_at > self.keep:
                del self._turns[key]
        while len(self._turns) >= self.max_turns:
            key, turn = next(iter(self._turns.items()))
            if not turn.done and turn.task is not None:
                turn.task.cancel()
            del self._turns[key]

    def running(self) -> int:
        return sum(1 for t in self._turns.values() if not t.done)
