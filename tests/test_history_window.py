"""Which turns the model sees once a conversation outgrows its history budget: the window's start holds still for
several turns (so a local model's cached prompt stays a prefix of the next one), never overflows the budget and
never shrinks below half of it. On SQLite and PostgreSQL, through the repository the pipeline reads."""
from __future__ import annotations

import random
from itertools import pairwise

import pytest

from core.tokens import MESSAGE_OVERHEAD, token_bound
from core.types import ChatMessage, ConversationKey
from storage.db import session_factory
from storage.history import HistoryRepository
from tests.postgres import Database, database, postgres  # noqa: F401 - pytest fixtures, requested by name

BUDGET = 1200  # the default (adapters/settings.py)


@pytest.fixture
def history(database: Database):
    return HistoryRepository(session_factory(database.engine))


def cost(messages: list[ChatMessage]) -> int:
    return sum(token_bound(m.content) + MESSAGE_OVERHEAD for m in messages)


async def test_the_window_start_holds_for_several_turns_as_old_turns_drop(history):
    key = ConversationKey("web:1", "web:1")
    draw = random.Random(7)
    windows: list[list[ChatMessage]] = []
    answers: list[str] = []
    for turn in range(70):
        windows.append(await history.load(key, BUDGET))  # what the turn's prompt is built from, as the pipeline does
        answer = " ".join(draw.choice(("sea", "river", "mountain", "evening", "bread")) for _ in range(draw.randint(8, 40)))
        await history.append_exchange(key, f"Tell me more about thing number {turn}, please.", answer)
        answers.append(answer)

    full = next(t for t, w in enumerate(windows) if t and len(w) < 2 * t)  # the first turn that dropped something
    assert 5 < full < 40
    starts = []
    for turn in range(full, len(windows)):
        window = windows[turn]
        assert cost(window) <= BUDGET
        # at least half the budget, less the exchange that straddles the block's edge
        assert cost(window) >= BUDGET // 2 - 250, f"turn {turn}: only {cost(window)} tokens kept"
        assert window[0].role == "user" and window[-1].content == answers[turn - 1]
        starts.append(window[0].content)
    # how many consecutive turns each window start lasted: the cached prefix is reused on all but the first
    runs = [1]
    for before, now in pairwise(starts):
        if now == before:
            runs[-1] += 1
        else:
            runs.append(1)
    assert len(runs) >= 3, runs  # old turns did drop, more than once
    middle = runs[1:-1]  # the first and last runs are cut by where the test starts and ends
    assert min(middle) >= 3 and sum(middle) / len(middle) >= 4, runs  # sliding one exchange a turn: all 1s
    for turn in range(full, len(windows) - 1):
        now, then = windows[turn], windows[turn + 1]
        if then[0].content == now[0].content:
            assert then[: len(now)] == now  # the whole earlier window is a prefix of the next one
