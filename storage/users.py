"""Users, per-chat settings and the record of handled platform updates."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.history import ensure_chat, ensure_user, insert_missing
from storage.models import Chat, HandledUpdate, JobRecord, Message, PendingUpdate, User, VoiceRecord
from storage.rows import locked


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
            count = lambda model: session.scalar(select(func.count()).select_from(model))  # noqa: E731
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
            extra = dict(chat.settings or {})
            for name, value in values.items():
                if name in self.FIELDS:
                    setattr(chat, name, value)
                else:
                    extra[name] = value
            chat.settings = extra
            return chat

    async def delete(self, chat_id: str) -> bool:
        """Forget a chat's choices (a user's /forget takes their private chat's along); True if there were any."""
        async with self.sessions.begin() as session:
            result = await session.execute(delete(Chat).where(Chat.id == chat_id))
            return bool(result.rowcount)


class HandledUpdates:
    """Platform update ids already answered, so a restart neither loses nor repeats a message."""

    # Telegram hands out an unanswered update for 24 hours and a Discord RESUME replays minutes: a week is ample
    KEEP = timedelta(days=7)
    PRUNE_EVERY = 500  # marks between two clean-ups

    def __init__(self, sessions: async_sessionmaker[AsyncSession], platform: str) -> None:
        self.sessions = sessions
        self.platform = platform
        self._marks = 0

    async def seen(self, update_id: int) -> bool:
        async with self.sessions() as session:
            return await session.scalar(
                select(func.count()).select_from(HandledUpdate)
                .where(HandledUpdate.platform == self.platform, HandledUpdate.update_id == update_id)
            ) > 0

    async def keep(self, update_id: int, payload: dict) -> None:
        """Take an update in before acknowledging it to the platform; `pending` hands it back until it is marked."""
        async with self.sessions.begin() as session:
            await insert_missing(session, PendingUpdate, platform=self.platform, update_id=update_id, payload=payload)

    async def pending(self) -> list[dict]:
        """The payloads of updates taken in and not yet answered, oldest first."""
        async with self.sessions() as session:
            rows = await session.scalars(select(PendingUpdate).where(PendingUpdate.platform == self.platform)
                                         .order_by(PendingUpdate.update_id))
            return [row.payload for row in rows]

    async def mark(self, update_id: int) -> bool:
        """True if this call recorded it, False if it was already there."""
        try:
            async with self.sessions.begin() as session:
                await session.execute(delete(PendingUpdate).where(PendingUpdate.platform == self.platform,
                                                                  PendingUpdate.update_id == update_id))
                session.add(HandledUpdate(platform=self.platform, update_id=update_id))
        except IntegrityError:
            async with self.sessions.begin() as session:
                await session.execute(delete(PendingUpdate).where(PendingUpdate.platform == self.platform,
                                                                  PendingUpdate.update_id == update_id))
            return False
        self._marks += 1
        if self._marks % self.PRUNE_EVERY == 0:
            await self.prune()
        return True

    async def prune(self, keep: timedelta | None = None) -> int:
        """Forget ids older than `keep`; the platform will never hand those updates out again."""
        cutoff = datetime.now(timezone.utc) - (self.KEEP if keep is None else keep)
        async with self.sessions.begin() as session:
            result = await session.execute(
                delete(HandledUpdate).where(HandledUpdate.platform == self.platform, HandledUpdate.handled_at < cutoff))
            return result.rowcount or 0

    async def last(self) -> int | None:
        async with self.sessions() as session:
            return await session.scalar(select(func.max(HandledUpdate.update_id)).where(HandledUpdate.platform == self.platform))
