"""The Telegram bot's multi-step flows keep their state in the chat's settings row (bot/telegram/fsm_storage.py):
several flows in one group chat, changed at the same moment, on both database backends."""
from __future__ import annotations

import asyncio

import pytest
from aiogram.fsm.storage.base import StorageKey

from bot.telegram.fsm_storage import ChatSettingsStorage
from storage.db import session_factory
from storage.users import ChatSettingsRepository
from tests.postgres import Database, database, postgres  # noqa: F401 - pytest fixtures, requested by name


@pytest.fixture
def storage(database: Database):
    return ChatSettingsStorage(ChatSettingsRepository(session_factory(database.engine)))


async def test_flows_of_several_members_in_one_group_keep_every_step(storage):
    # twelve admins of one group each at a step of their own flow, all answering at once
    keys = [StorageKey(bot_id=1, chat_id=-100, user_id=user) for user in range(1, 13)]
    await asyncio.gather(*(storage.set_state(key, f"Enrol:step{key.user_id}") for key in keys))
    await asyncio.gather(*(storage.set_data(key, {"name": f"voice{key.user_id}"}) for key in keys))
    assert [await storage.get_state(key) for key in keys] == [f"Enrol:step{u}" for u in range(1, 13)]
    assert [await storage.get_data(key) for key in keys] == [{"name": f"voice{u}"} for u in range(1, 13)]

    # a finished flow leaves no trace, and the others are untouched
    await asyncio.gather(*(storage.set_state(key, None) for key in keys[:6]),
                         *(storage.set_data(key, {}) for key in keys[:6]))
    assert [await storage.get_state(key) for key in keys] == [None] * 6 + [f"Enrol:step{u}" for u in range(7, 13)]
