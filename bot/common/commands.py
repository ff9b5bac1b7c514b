"""The commands every bot offers, worded once: /voice, /avatar, /persona, /language and /stats.

Each bot parses its platform's arguments into `argument(...)`, decides who may change a chat's choice (a Discord
server's managers, anyone in their own Telegram chat), and sends the text these functions return. The one thing a
platform adds is how a name stands out in a reply (`Emphasis`: bold on Discord, quotes in Telegram's plain text).
"""
from __future__ import annotations

from typing import Awaitable, Callable

from bot.common.avatars import find_avatar, list_avatars
from bot.common.default_voice import back_to_default
from bot.common.userqueue import UserQueue
from bot.wiring import Services
from core.errors import BadInput
from core.languages import chosen_language
from core.types import JobStatus

Emphasis = Callable[[str], str]
Show = Callable[[Services, str, Emphasis], Awaitable[str]]  # (services, chat, emphasis) -> the current choice
Choose = Callable[[Services, str, str, Emphasis], Awaitable[str]]  # (services, chat, typed, emphasis) -> what changed

# the words that take a chat back to the deployment's choice; for the face, "off" too (no video answers)
RESET_WORDS = frozenset({"default", "none", "reset"})
NO_VIDEO_WORDS = RESET_WORDS | {"off"}


def argument(text: str | None) -> str | None:
    """What the user typed after the command, or None for a bare command (which shows the current choice)."""
    return (text or "").strip() or None


async def show_voice(services: Services, chat: str, shown: Emphasis) -> str:
    current = (await services.chats.get(chat)).voice or services.settings.voice
    voices = await services.voices.list()
    listing = ", ".join(f"{v.name} ({v.engine.value}, {v.language}{'' if v.ready else ', training'})" for v in voices)
    using = f"the voice {shown(current)}" if current else "the standard voice"
    return (f"I answer with {using} here. Voices: {listing or 'none yet'}.\n"
            "/voice NAME chooses one, /voice default goes back to the standard voice.")


async def choose_voice(services: Services, chat: str, name: str, shown: Emphasis) -> str:
    if name.lower() in RESET_WORDS:
        return await back_to_default(services, chat)
    chosen = await services.voices.get(name)  # UnknownVoice tells the user what exists
    await services.chats.set(chat, voice=chosen.name)
    note = "" if chosen.ready else " It is still training; replies will use it once it is ready."
    return f"I answer with the voice {shown(chosen.name)} here now.{note}"


async def show_avatar(services: Services, chat: str, shown: Emphasis) -> str:
    current = (await services.chats.get(chat)).avatar or services.settings.avatar or "none"
    listing = ", ".join(f"{a.name}{'' if a.ready else ' (training)'}" for a in await list_avatars(services))
    return (f"My face here: {shown(current)}. Avatars: {listing or 'none yet'}.\n"
            "/avatar NAME chooses one, /avatar off: no video.")


async def choose_avatar(services: Services, chat: str, name: str, shown: Emphasis) -> str:
    if name.lower() in NO_VIDEO_WORDS:
        await services.chats.set(chat, avatar=None)
        return "No more video answers here."
    chosen = await find_avatar(services, name)
    if chosen is None:
        raise BadInput(f"There is no avatar called '{name}'. /avatar lists them.")
    await services.chats.set(chat, avatar=chosen.name)
    note = "" if chosen.ready else " It is still training; videos start once it is ready."
    return f"I answer with the face {shown(chosen.name)} here too now.{note}"


async def show_persona(services: Services, chat: str, shown: Emphasis) -> str:
    current = (await services.chats.get(chat)).persona or services.settings.persona
    return f"Persona here: {shown(current)}. Personas: {', '.join(services.personas.names())}."


async def choose_persona(services: Services, chat: str, name: str, shown: Emphasis) -> str:
    chosen = services.personas.get(name)  # UnknownPersona lists the known ones
    await services.chats.set(chat, persona=chosen.name)
    return f"I am {shown(chosen.name)} here now."


async def show_language(services: Services, chat: str, shown: Emphasis) -> str:
    current = (await services.chats.get(chat)).language or services.settings.language
    codes = ", ".join(services.settings.heard_languages) or "any code"
    return f"I expect {shown(current)} here. /language CODE changes it: {codes}, or auto."


async def choose_language(services: Services, chat: str, code: str, shown: Emphasis) -> str:
    chosen = chosen_language(code, services.settings.heard_languages)  # UnknownLanguage, or BadInput naming the choices
    await services.chats.set(chat, language=chosen)
    return f"Language here: {shown(chosen)}."


async def stats(services: Services, queue: UserQueue) -> str:
    figures = await services.users.stats()
    running = len(await services.jobs.list([JobStatus.QUEUED, JobStatus.RUNNING]))
    live = queue.stats()
    return (f"Users: {figures['users']}\nMessages stored: {figures['messages']}\nVoices: {figures['voices']}\n"
            f"Jobs: {figures['jobs']} ({running} queued or running)\n"
            f"Answers running now: {live['replies_running']}, waiting: {live['replies_waiting']}")
