"""aiogram FSM state kept in the database (beside the chat's settings), so a multi-step admin flow survives a restart."""
from __future__ import annotations

from typing import Any, Mapping

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey

from storage.users import ChatSettingsRepository


class ChatSettingsStorage(BaseStorage):
    def __init__(self, chats: ChatSettingsRepository) -> None:
        self.chats = chats

    @staticmethod
    def _where(key: StorageKey) -> tuple[str, str]:
        return f"tg:{key.chat_id}", f"{key.user_id}:{key.thread_id or 0}:{key.destiny}"

    async def _all(self, chat: str) -> dict[str, Any]:
        return dict(((await self.chats.get(chat)).settings or {}).get("fsm") or {})

    async def _update(self, key: StorageKey, **values: Any) -> None:
        chat, slot = self._where(key)

        def merged(current: dict[str, Any] | None) -> dict[str, Any]:
            every = dict(current or {})
            entry = {**every.get(slot, {}), **values}
            if entry.get("state") is None and not entry.get("data"):
                every.pop(slot, None)
            else:
                every[slot] = entry
            return every

        await self.chats.change(chat, "fsm", merged)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        await self._update(key, state=state.state if isinstance(state, State) else state)

    async def get_state(self, key: StorageKey) -> str | None:
        chat, slot = self._where(key)
        return (await self._all(chat)).get(slot, {}).get("state")

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._update(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        chat, slot = self._where(key)
        return dict((await self._all(chat)).get(slot, {}).get("data") or {})

    async def close(self) -> None:
        pass
