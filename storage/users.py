"""Users and per-chat settings."""
from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.history import ensure_chat, ensure_user
from storage.models import Chat, JobRecord, Message, User, VoiceRecord
from storage.rows import locked, rowcount


class UserRepository:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def touch(self, user_id: str, display_name: str = "") -> User:
        async with self.sessions.begin() as session:
            user = await ensure_user(session, user_id, display_name)
            if display_name and user.display_name != display_name:
                user.display_name = display_name
            return user

    async def get(self, user_id: str) -> User | None:
        async with self.sessions() as session:
            return await session.get(User, user_id)

    async def set_allowed(self, user_id: str, allowed: bool) -> None:
        async with self.sessions.begin() as session:
            (await ensure_user(session, user_id)).allowed = allowed

    async def set_admin(self, user_id: str, admin: bool) -> None:
        async with self.sessions.begin() as session:
            (await ensure_user(session, user_id)).is_admin = admin

    async def list(self) -> list[User]:
        async with self.sessions() as session:
            return list((await session.scalars(select(User).order_by(User.created_at))).all())

    async def stats(self) -> dict[str, int]:
        async with self.sessions() as session:
            count = lambda model: session.scalar(select(func.count()).select_from(model))
            return {
                "users": await count(User) or 0,
                "messages": await count(Message) or 0,
                "voices": await count(VoiceRecord) or 0,
                "jobs": await count(JobRecord) or 0,
            }


class ChatSettingsRepository:
    """Per-chat choices: persona, voice, avatar, language and free-form settings."""

    FIELDS = ("persona", "voice", "avatar", "language")

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def get(self, chat_id: str) -> Chat:
        async with self.sessions() as session:
            chat = await session.get(Chat, chat_id)
            return chat if chat is not None else Chat(id=chat_id, settings={})

    async def set(self, chat_id: str, **values: object) -> Chat:
        async with self.sessions.begin() as session:
            await ensure_chat(session, chat_id)
            chat = await locked(session, Chat, chat_id)
            assert chat is not None  # ensured above
            extra = dict(chat.settings or {})
            for name, value in values.items():
                if name in self.FIELDS:
                    setattr(chat, name, value)
                else:
                    extra[name] = value
            chat.settings = extra
            return chat

    async def change(self, chat_id: str, name: str, change: Callable[[Any], Any]) -> None:
        """Replace one free-form setting with `change(its current value)`, read and written under the chat's row
        lock: flows of several members of one group that each keep their part in one setting lose no update."""
        async with self.sessions.begin() as session:
            await ensure_chat(session, chat_id)
            chat = await locked(session, Chat, chat_id)
            assert chat is not None  # ensure_chat made it, in this transaction
            extra = dict(chat.settings or {})
            extra[name] = change(extra.get(name))
            chat.settings = extra

    async def delete(self, chat_id: str) -> bool:
        """Forget a chat's choices (a user's /forget takes their private chat's along); True if there were any."""
        async with self.sessions.begin() as session:
            result = await session.execute(delete(Chat).where(Chat.id == chat_id))
            return bool(rowcount(result))
