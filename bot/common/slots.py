"""How many replies are made at once, across all users of a channel, and who is next.

The engines are CPU-bound: twenty replies sharing the cores all finish late together, while a few at a time
finish in turn. Replies past the cap wait first come, first served, and each can be told its place in line;
past `max_waiting` a newcomer is refused at once with a clear "busy" rather than made to wait for minutes.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import AsyncIterator

from core.errors import DoppelError


class Busy(DoppelError):
    code = "busy"

    def __init__(self, waiting: int) -> None:
        super().__init__(f"I'm busy: {waiting} messages are already waiting for an answer. Please try again in a minute.")
        self.waiting = waiting


def place(position: int) -> str:
    """1 → "1st", 2 → "2nd", 11 → "11th", 23 → "23rd"."""
    suffix = "th" if 10 <= position % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(position % 10, "th")
    return f"{position}{suffix}"


def busy_note(position: int) -> str:
    return f"Busy right now: you are {place(position)} in line. Your answer starts as soon as it is your turn."


class Ticket:
    """One reply's claim on a slot: running at once, or waiting at a place in line."""

    def __init__(self, slots: ReplySlots) -> None:
        self._slots = slots
        self._moved = asyncio.Event()
        self.running = False
        self.left = False

    @property
    def position(self) -> int:
        """0 when running; otherwise the place in line, 1 being next."""
        return 0 if self.running else self._slots._line.index(self) + 1

    async def places(self) -> AsyncIterator[int]:
        """The place in line each time it changes, until the reply may start (then the iterator ends)."""
        shown = None
        while not self.running:
            if self.position != shown:
                shown = self.position
                yield shown
            self._moved.clear()
            await self._moved.wait()

    async def admitted(self) -> None:
        async for _ in self.places():
            pass

    def leave(self) -> None:
        """Gives the slot (or the place in line) back; safe to call more than once."""
        if self.left:
            return
        self.left = True
        self._slots._leave(self)

    async def __aenter__(self) -> Ticket:
        try:
            await self.admitted()
        except BaseException:
            self.leave()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.leave()


class ReplySlots:
    def __init__(self, at_once: int, max_waiting: int = 100) -> None:
        self.at_once = at_once  # 0: no cap
        self.max_waiting = max_waiting
        self._running = 0
        self._line: deque[Ticket] = deque()

    def join(self) -> Ticket:
        """A ticket that runs at once if a slot is free, else waits in line. Raises Busy when the line is full."""
        ticket = Ticket(self)
        if not self.at_once or (self._running < self.at_once and not self._line):
            ticket.running = True
            self._running += 1
        elif len(self._line) >= self.max_waiting:
            raise Busy(len(self._line))
        else:
            self._line.append(ticket)
        return ticket

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._line)

    def _leave(self, ticket: Ticket) -> None:
        if ticket.running:
            self._running -= 1
        else:
            self._line.remove(ticket)
        admitted = []
        while self._line and (not self.at_once or self._running < self.at_once):
            nxt = self._line.popleft()
            nxt.running = True
            self._running += 1
            admitted.append(nxt)
        # everyone behind moved up a place; those admitted may start
        for moved in (*admitted, *self._line):
            moved._moved.set()
