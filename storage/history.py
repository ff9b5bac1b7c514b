"""Conversation history per user and chat, bounded by a token budget."""
from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import UnknownUser
from core.tokens import MESSAGE_OVERHEAD, token_bound
from core.types import ChatMessage, ConversationKey
from storage.models import Chat, Message, User
from storage.rows import rowcount


async def insert_missing(session: AsyncSession, model: type, **values: object) -> None:
    """Insert a row unless one with its key is already there. A new chat's or user's first messages arrive at
    once from several requests (and processes): whoever comes second must find the row, not fail on it."""
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        module = __import__(f"sqlalchemy.dialects.{dialect}", fromlist=["insert"])
        await session.execute(module.insert(model).values(**values).on_conflict_do_nothing())
        return
    try:
        async with session.begin_nested():
            session.add(model(**values))
    except IntegrityError:
        pass


async def ensure_user(session: AsyncSession, user_id: str, display_name: str = "") -> User:
    user = await session.get(User, user_id)
    if user is None:
        await insert_missing(session, User, id=user_id, display_name=display_name)
        user = await session.get(User, user_id, populate_existing=True)
    assert user is not None  # inserted just now, or by another writer first
    return user


async def ensure_chat(session: AsyncSession, chat_id: str) -> Chat:
    chat = await session.get(Chat, chat_id)
    if chat is None:
        await insert_missing(session, Chat, id=chat_id, settings={})
        chat = await session.get(Chat, chat_id, populate_existing=True)
    assert chat is not None  # inserted just now, or by another writer first
    return chat


def _block_start(tokens: list[int], offset: int, block: int) -> int:
    """How many of the oldest messages that fit (`tokens`, as stored, oldest first) to leave out so that the window
    starts on the first message at or past a multiple of `block`, measured from the conversation's start
    (`offset`: what the messages before them take). The stored counts are the ruler because they never change:
    the start stays put while the conversation grows by a block, then jumps one block on."""
    boundary = -(-offset // block) * block
    position = offset
    for index, count in enumerate(tokens):
        if position >= boundary:
            return index
        position += count + MESSAGE_OVERHEAD
    return len(tokens)


class HistoryRepository:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def load(self, key: ConversationKey, token_budget: int) -> list[ChatMessage]:
        """The newest messages that fit the budget. Once the conversation outgrows it, the window's first message
        moves in blocks of half the budget rather than one exchange per turn: a local model keeps the prompt it
        evaluated last and only reads what follows the part that is unchanged, so a window that slid every turn
        made it read the whole history again each time (bench/long_chat.py)."""
        conversation = (Message.user_id == key.user_id, Message.chat_id == key.chat_id)
        async with self.sessions() as session:
            rows = await session.stream_scalars(select(Message).where(*conversation).order_by(Message.id.desc()))
            picked: list[Message] = []
            used = 0
            dropped = False
            async for row in rows:
                # counted again from the text: rows stored by older versions carry an estimate that undercounts
                cost = max(row.tokens, token_bound(row.content)) + MESSAGE_OVERHEAD
                if used + cost > token_budget:
                    dropped = True
                    break
                picked.append(row)
                used += cost
            await rows.close()
            if dropped and picked:
                before = await session.scalar(
                    select(func.coalesce(func.sum(Message.tokens), 0) + func.count() * MESSAGE_OVERHEAD)
                    .where(*conversation, Message.id < picked[-1].id))
                cut = _block_start([m.tokens for m in reversed(picked)], before or 0, max(1, token_budget // 2))
                # messages large against the budget could leave no question at all: the last exchange stays
                newest_question = next((i for i, m in enumerate(picked) if m.role == "user"), len(picked) - 1)
                picked = picked[: max(len(picked) - cut, newest_question + 1)]
        # never start the window on an answer whose question fell outside it
        while picked and picked[-1].role == "assistant":
            picked.pop()
        return [ChatMessage(m.role, m.content) for m in reversed(picked)]  # type: ignore[arg-type]  # the column holds only the three roles Message rows are written with

    async def append_exchange(self, key: ConversationKey, user_text: str, assistant_text: str) -> None:
        async with self.sessions.begin() as session:
            await ensure_user(session, key.user_id)
            await ensure_chat(session, key.chat_id)
            session.add_all([
                Message(user_id=key.user_id, chat_id=key.chat_id, role="user", content=user_text, tokens=token_bound(user_text)),
                Message(user_id=key.user_id, chat_id=key.chat_id, role="assistant", content=assistant_text,
                        tokens=token_bound(assistant_text)),
            ])

    async def reset(self, key: ConversationKey) -> int:
        async with self.sessions.begin() as session:
            result = await session.execute(
                delete(Message).where(Message.user_id == key.user_id, Message.chat_id == key.chat_id)
            )
            return rowcount(result) or 0

    async def count(self, key: ConversationKey) -> int:
        async with self.sessions() as session:
            return await session.scalar(
                select(func.count()).select_from(Message).where(Message.user_id == key.user_id, Message.chat_id == key.chat_id)
            ) or 0

    async def export_user(self, user_id: str) -> dict:
        """Everything stored about a user, for a data-export request."""
        async with self.sessions() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise UnknownUser()
            rows = (await session.scalars(select(Message).where(Message.user_id == user_id).order_by(Message.id))).all()
        return {
            "user": {"id": user_id, "display_name": user.display_name, "allowed": user.allowed},
            "messages": [
                {"chat": m.chat_id, "role": m.role, "content": m.content, "at": m.created_at.isoformat()} for m in rows
            ],
        }

    async def delete_user(self, user_id: str) -> int:
        async with self.sessions.begin() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise UnknownUser()
            result = await session.execute(delete(Message).where(Message.user_id == user_id))
            await session.delete(user)
            return rowcount(result) or 0
