"""Group etiquette: in a group the bot speaks only when mentioned or replied to."""
from __future__ import annotations

from aiogram import Bot
from aiogram.filters import BaseFilter
from aiogram.types import Message


class Addressed(BaseFilter):
    """Private chats always; groups when the message mentions the bot or replies to one of its messages."""

    async def __call__(self, message: Message, bot: Bot) -> bool:
        if message.chat.type == "private":
            return True
        me = await bot.me()
        reply = message.reply_to_message
        if reply is not None and reply.from_user is not None and reply.from_user.id == me.id:
            return True
        return mentions(message, me.username or "", me.id)


def mentions(message: Message, username: str, bot_id: int) -> bool:
    text = message.text or message.caption or ""
    for entity in message.entities or message.caption_entities or []:
        if entity.type == "mention" and username and entity.extract_from(text).lstrip("@").lower() == username.lower():
            return True
        if entity.type == "text_mention" and entity.user is not None and entity.user.id == bot_id:
            return True
    return False


def without_mention(text: str, username: str) -> str:
    """The message as the user meant it for the bot: '@doppel_bot how are you' → 'how are you'."""
    if not username:
        return text.strip()
    return " ".join(w for w in text.split() if w.lower() != "@" + username.lower()).strip()
