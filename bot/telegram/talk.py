"""The conversation: recordings and text in, the persona's answer out. Handlers only pick the kind of input."""
from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.types import Message

from bot.telegram.answer import Answerer
from bot.telegram.files import UnsupportedMessage
from bot.telegram.filters import Addressed


_SPEECH = F.voice | F.audio | F.video_note | F.video | F.document.mime_type.startswith("audio/") \
    | F.document.mime_type.startswith("video/")


async def on_recording(message: Message, bot: Bot, answerer: Answerer) -> None:
    await answerer.answer(message, bot, spoken=True)


async def on_unknown_command(message: Message) -> None:
    await message.answer("I don't know that command. /help lists what I can do.", parse_mode=None)


async def on_text(message: Message, bot: Bot, answerer: Answerer) -> None:
    await answerer.answer(message, bot, spoken=False)


async def on_anything_else(message: Message) -> None:
    raise UnsupportedMessage()


def make_router() -> Router:
    router = Router(name="talk")
    router.message.register(on_recording, _SPEECH, Addressed())
    router.message.register(on_unknown_command, F.text.startswith("/"), Addressed())
    router.message.register(on_text, F.text, Addressed())
    router.message.register(on_anything_else, F.chat.type == "private")
    return router
