"""Commands every user has: help, forgetting, choosing voice/persona/language, exporting and deleting their data."""
from __future__ import annotations

import json

from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import BotCommand, BufferedInputFile, Message

from bot.common.access import AccessPolicy
from bot.common.userqueue import UserQueue
from bot.telegram.answer import chat_key, user_key
from bot.wiring import Services
from core.errors import BadInput
from core.languages import chosen_language
from core.types import ConversationKey


HELP = """Send me a voice message, an audio file, a video note or text, and I answer in text and with a voice note.

/reset – forget our conversation
/voice [name|default] – show or choose the voice I answer with
/persona [name] – show or choose who I am
/avatar [name|off] – show or choose the face in my video answers
/language [code|auto] – the language you speak (en, fr, es ... or auto)
/cancel – stop the answer I am working on
/mydata – get everything I store about you as a file
/forget – delete everything I store about you"""

ADMIN_HELP = """

Admin:
/add_voice NAME – reply to a recording, or send recordings after it and finish with /done
/add_rvc NAME [pitch=N] – then an RVC model (.pth, and its .index) as files, then /done
/train_avatar NAME – reply to a video (trained) or a photo (ready at once), or send one after it
/jobs – training jobs
/cancel JOB – stop a training job (what serves now keeps serving)
/versions – voices and avatars: their versions and training
/restore voice|avatar NAME v1 – use an earlier version again
/rename voice|avatar NAME NEW – rename one
/delete voice|avatar NAME – delete one, with its files
/retry JOB – train a failed or cancelled job again
/allow USER, /deny USER – by Telegram id, or as a reply to their message
/stats – usage figures"""


def menu(help_text: str) -> list[BotCommand]:
    """The command menu Telegram shows beside the message box, from the help text (one source for both)."""
    commands: list[BotCommand] = []
    for line in help_text.splitlines():
        for part in line.split(" – ")[0].split(", "):
            if part.startswith("/"):
                name = part[1:].split()[0]
                if name not in {c.command for c in commands}:
                    commands.append(BotCommand(command=name, description=line.split(" – ", 1)[1][:256]))
    return commands


async def start(message: Message, is_admin: bool) -> None:
    name = message.from_user.first_name if message.from_user else ""
    await message.answer(f"Hello {name}!\n\n{HELP}{ADMIN_HELP if is_admin else ''}", parse_mode=None)


async def help_(message: Message, is_admin: bool) -> None:
    await message.answer(HELP + (ADMIN_HELP if is_admin else ""), parse_mode=None)


async def reset(message: Message, services: Services) -> None:
    removed = await services.history.reset(_conversation(message))
    await message.answer(f"I forgot our conversation ({removed} messages).", parse_mode=None)


async def voice(message: Message, command: CommandObject, services: Services) -> None:
    chat = chat_key(message.chat.id)
    name = (command.args or "").strip()
    if not name:
        current = (await services.chats.get(chat)).voice or services.settings.voice or "the standard voice"
        voices = await services.voices.list()
        listing = ", ".join(f"{v.name}{'' if v.ready else ' (training)'}" for v in voices) or "none yet"
        await message.answer(f"I answer with {current}. Voices: {listing}.\n/voice NAME chooses one, /voice default goes back.",
                             parse_mode=None)
        return
    if name == "default":
        await services.chats.set(chat, voice=None)
        await message.answer("Back to the standard voice.", parse_mode=None)
        return
    chosen = await services.voices.get(name)  # UnknownVoice tells the user what exists
    await services.chats.set(chat, voice=chosen.name)
    note = "" if chosen.ready else " It is still training; I'll use it once it is ready."
    await message.answer(f"I now answer with the voice '{chosen.name}'.{note}", parse_mode=None)


async def persona(message: Message, command: CommandObject, services: Services) -> None:
    chat = chat_key(message.chat.id)
    name = (command.args or "").strip()
    if not name:
        current = (await services.chats.get(chat)).persona or services.settings.persona
        await message.answer(f"I am '{current}'. Personas: {', '.join(services.personas.names())}.", parse_mode=None)
        return
    chosen = services.personas.get(name)  # UnknownPersona lists the known ones
    await services.chats.set(chat, persona=chosen.name)
    await message.answer(f"I am now '{chosen.name}'.", parse_mode=None)


async def avatar(message: Message, command: CommandObject, services: Services) -> None:
    from bot.common.avatars import find_avatar, list_avatars

    chat = chat_key(message.chat.id)
    name = (command.args or "").strip()
    if not name:
        known = await list_avatars(services)
        current = (await services.chats.get(chat)).avatar or services.settings.avatar or "none"
        listing = ", ".join(f"{a.name}{'' if a.ready else ' (training)'}" for a in known) or "none yet"
        await message.answer(f"My face: {current}. Avatars: {listing}.\n/avatar NAME chooses one, /avatar off: no video.",
                             parse_mode=None)
        return
    if name == "off":
        await services.chats.set(chat, avatar=None)
        await message.answer("No more video answers here.", parse_mode=None)
        return
    chosen = await find_avatar(services, name)
    if chosen is None:
        raise BadInput(f"There is no avatar called '{name}'. /avatar lists them.")
    await services.chats.set(chat, avatar=chosen.name)
    note = "" if chosen.ready else " It is still training; videos start once it is ready."
    await message.answer(f"I now answer with the face '{chosen.name}' too.{note}", parse_mode=None)


async def language(message: Message, command: CommandObject, services: Services) -> None:
    chat = chat_key(message.chat.id)
    code = (command.args or "").strip().lower()
    if not code:
        current = (await services.chats.get(chat)).language or services.settings.language
        await message.answer(f"I expect you to speak '{current}'. /language CODE changes it (en, fr, es ... or auto).",
                             parse_mode=None)
        return
    code = chosen_language(code, services.settings.languages)
    await services.chats.set(chat, language=code)
    await message.answer(f"Language set to '{code}'.", parse_mode=None)


async def cancel(message: Message, command: CommandObject, services: Services, queue: UserQueue, is_admin: bool) -> None:
    args = (command.args or "").strip()
    if args:
        # "/cancel 12" stops a training job: an admin's business
        from bot.telegram.admin import cancel_job

        await cancel_job(message, args, services, is_admin)
        return
    if not queue.cancel(user_key(message.from_user.id)):  # type: ignore[union-attr]  # commands come from users, never from a channel's own posts
        await message.answer("I am not working on anything for you.", parse_mode=None)
    # when something was running, its own handler says "Stopped" as it ends


async def mydata(message: Message, services: Services) -> None:
    uid = user_key(message.from_user.id)  # type: ignore[union-attr]  # commands come from users, never from a channel's own posts
    data = await services.history.export_user(uid)
    chat = await services.chats.get(chat_key(message.chat.id))
    data["chat_settings"] = {"persona": chat.persona, "voice": chat.voice, "avatar": chat.avatar, "language": chat.language}
    body = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
    await message.answer_document(BufferedInputFile(body, "my-data.json"),
                                  caption=f"Everything I store about you: {len(data['messages'])} messages.", parse_mode=None)


async def forget(message: Message, services: Services, queue: UserQueue, access: AccessPolicy) -> None:
    uid = message.from_user.id  # type: ignore[union-attr]  # commands come from users, never from a channel's own posts
    queue.cancel(user_key(uid))
    before = await services.users.get(user_key(uid))
    removed = await services.history.delete_user(user_key(uid))
    await services.chats.delete(chat_key(uid))  # the private chat's settings are theirs too (a group's stay the group's)
    if before is not None and (before.is_admin or services.settings.allowed_ids):
        # keep an admin's grant: forgetting your data should not lock you out
        await access.allow(uid)
        if before.is_admin:
            await services.users.set_admin(user_key(uid), True)
    await message.answer(f"Done: I deleted your profile and {removed} messages.", parse_mode=None)


def _conversation(message: Message) -> ConversationKey:
    return ConversationKey(user_key(message.from_user.id), chat_key(message.chat.id))  # type: ignore[union-attr]  # commands come from users, never from a channel's own posts


def make_router() -> Router:
    router = Router(name="user_commands")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    router.message.register(reset, Command("reset"))
    router.message.register(voice, Command("voice"))
    router.message.register(persona, Command("persona"))
    router.message.register(avatar, Command("avatar"))
    router.message.register(language, Command("language"))
    router.message.register(cancel, Command("cancel"))
    router.message.register(mydata, Command("mydata"))
    router.message.register(forget, Command("forget"))
    return router
