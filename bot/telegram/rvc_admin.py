"""`/add_rvc NAME [pitch=N f0=... index_rate=... protect=...]`, then the model (.pth) and optional index as files,
then `/done`: an RVC voice from an admin's files, checked in full (bot/common/rvc_voices.py) and ready at once."""
from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message
from aiogram.utils.chat_action import ChatActionSender

from bot.common.rvc_voices import INDEX_SUFFIXES, add_rvc_voice, parse_settings
from bot.telegram import files
from bot.telegram.middlewares import AdminOnlyMiddleware
from bot.wiring import Services
from core.errors import BadInput

USAGE = "/add_rvc NAME [pitch=N f0=harvest|yin|pyin index_rate=0..1 protect=0..0.5], then the .pth (and .index) as files, then /done"


class CollectingRvc(StatesGroup):
    files = State()


async def add_rvc_start(message: Message, command: CommandObject, state: FSMContext) -> None:
    words = (command.args or "").split()
    if not words:
        raise BadInput(f"Usage: {USAGE}.")
    settings = parse_settings(words[1:])  # a wrong setting is refused now, before any upload
    await state.set_state(CollectingRvc.files)
    await state.set_data({"name": words[0], "settings": settings, "model": None, "index": None})
    await message.answer(f"Send the RVC model of '{words[0]}' as a file (.pth), and its index (.index) if it has one, "
                         "then /done. /abort stops.", parse_mode=None)


async def add_rvc_file(message: Message, state: FSMContext) -> None:
    doc = message.document
    assert doc is not None
    name = (doc.file_name or "").lower()
    ref = [doc.file_id, doc.file_size, "document", doc.file_name or ""]
    if name.endswith(".pth"):
        await state.update_data(model=ref)
        await message.answer("Got the model. Send its .index too, or /done.", parse_mode=None)
    elif name.endswith(INDEX_SUFFIXES):
        await state.update_data(index=ref)
        await message.answer("Got the index. Send the model (.pth) if you haven't, then /done.", parse_mode=None)
    else:
        raise BadInput("Send the model as a .pth file and the index as a .index file (as files, not photos or audio).")


async def add_rvc_done(message: Message, bot: Bot, state: FSMContext, services: Services) -> None:
    data = await state.get_data()
    if not data.get("model"):
        raise BadInput("Send the model (.pth) first, or /abort.")
    await state.clear()
    async with ChatActionSender.typing(chat_id=message.chat.id, bot=bot):  # the test sentence takes a moment
        model_ref = files.MediaRef(*data["model"])
        model = (model_ref.name, await files.download(bot, model_ref, services.settings))
        index = None
        if data.get("index"):
            index_ref = files.MediaRef(*data["index"])
            index = (index_ref.name, await files.download(bot, index_ref, services.settings))
        added = await add_rvc_voice(services, data["name"], model, index, data.get("settings") or {})
    await message.answer(f"Voice '{added.voice.name}' is ready: RVC {added.version}, {added.sample_rate} Hz"
                         f"{', with its index' if index else ''}. /voice {added.voice.name} makes me use it in a chat.",
                         parse_mode=None)


async def abort(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer("Stopped; nothing was added.", parse_mode=None)


def make_router() -> Router:
    router = Router(name="rvc_admin")
    router.message.middleware(AdminOnlyMiddleware())
    router.message.register(add_rvc_start, Command("add_rvc"))
    router.message.register(add_rvc_file, CollectingRvc.files, F.document)
    router.message.register(add_rvc_done, CollectingRvc.files, Command("done"))
    router.message.register(abort, CollectingRvc.files, Command("abort"))
    return router
