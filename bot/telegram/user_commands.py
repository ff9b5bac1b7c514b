"""Commands every user has: help, forgetting, choosing voice/persona/language, exporting and deleting their data."""
from __future__ import annotations

import json

from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import BotCommand, BufferedInputFile, Message

from bot.common import commands
from bot.common.access import AccessPolicy
from bot.common.userqueue import UserQueue
from bot.telegram.answer import chat_key, user_key
from bot.wiring import Services
from core.types import ConversationKey


HELP = """Send me a voice message, an audio file, a video note or text, and I answer in text and with a voice note.

/start, /help – what I understand
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


def _quoted(name: str) -> str:
    return f"'{name}'"


async def _show_or_choose(message: Message, command: CommandObject, services: Services,
                          show: commands.Show, choose: commands.Choose) -> None:
    chat, value = chat_key(message.chat.id), commands.argument(command.args)
    text = await (show(services, chat, _quoted) if value is None else choose(services, chat, value, _quoted))
    await message.answer(text, parse_mode=None)


async def voice(message: Message, command: CommandObject, services: Services) -> None:
    await _show_or_choose(message, command, services, commands.show_voice, commands.choose_voice)


async def persona(message: Message, command: CommandObject, services: Services) -> None:
    await _show_or_choose(message, command, services, commands.show_persona, commands.choose_persona)


async def avatar(message: Message, command: CommandObject, services: Services) -> None:
    await _show_or_choose(message, command, services, commands.show_avatar, commands.choose_avatar)


async def language(message: Message, command: CommandObject, services: Services) -> None:
    await _show_or_choose(message, command, services, commands.show_language, commands.choose_language)


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
