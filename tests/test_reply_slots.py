"""The shared cap on replies made at once: first come, first served, each waiting reply told its place."""
from __future__ import annotations

import asyncio

import pytest

from bot.common.slots import Busy, ReplySlots, busy_note, place
from bot.common.userqueue import UserQueue


def test_places_read_as_english():
    assert [place(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"]
    assert "you are 3rd in line" in busy_note(3)


async def test_waiting_replies_start_in_order_and_hear_their_place_move():
    slots = ReplySlots(at_once=2, max_waiting=3)
    running = [slots.join(), slots.join()]
    waiting = [slots.join() for _ in range(3)]
    assert [t.position for t in running + waiting] == [0, 0, 1, 2, 3]
    with pytest.raises(Busy) as full:
        slots.join()
    assert "3 messages are already waiting" in full.value.message

    heard: dict[int, list[int]] = {i: [] for i in range(3)}
    started: list[int] = []

    async def wait(i: int) -> None:
        async for where in waiting[i].places():
            heard[i].append(where)
        started.append(i)

    tasks = [asyncio.create_task(wait(i)) for i in range(3)]
    await asyncio.sleep(0)
    running[0].leave()  # the first in line starts; the others move up
    await asyncio.sleep(0)
    running[1].leave()
    await asyncio.sleep(0)
    waiting[0].leave()
    await asyncio.gather(*tasks)
    assert started == [0, 1, 2]
    assert heard == {0: [1], 1: [2, 1], 2: [3, 2, 1]}
    assert slots.running == 2 and slots.waiting == 0


async def test_a_reply_given_up_while_waiting_frees_its_place():
    slots = ReplySlots(at_once=1)
    first = slots.join()
    second, third = slots.join(), slots.join()
    waiter = asyncio.create_task(second.admitted())
    await asyncio.sleep(0)
    waiter.cancel()
    second.leave()
    assert third.position == 1
    first.leave()
    await asyncio.wait_for(third.admitted(), 1)
    assert third.running


async def test_the_user_queue_tells_a_waiting_user_their_place():
    queue = UserQueue(max_waiting=5, max_running=1)
    gate = asyncio.Event()
    told: list[int] = []

    async def told_place(where: int) -> None:
        told.append(where)

    first = asyncio.create_task(queue.run("a", gate.wait))
    await asyncio.sleep(0)
    second = asyncio.create_task(queue.run("b", lambda: asyncio.sleep(0, "b's answer"), on_wait=told_place))
    await asyncio.sleep(0.05)
    assert told == [1] and not second.done()
    gate.set()
    assert await second == "b's answer"
    await first
