"""`/voice default`: the chat drops its own choice and answers in the server's default voice, and the reply says
which voice that is. The standard (base) voice answers when no default is set, or while the default cannot be
used (no such voice, still training): the reply says that too, rather than promising a voice it won't get."""
from __future__ import annotations

from bot.wiring import Services
from core.errors import UnknownVoice


async def back_to_default(services: Services, chat_id: str) -> str:
    await services.chats.set(chat_id, voice=None)
    chat = await services.chats.get(chat_id)
    name = services.settings.voice or services.personas.get(chat.persona or services.settings.persona).voice
    if not name:
        return "Back to the standard voice."
    try:
        voice = await services.voices.get(name)
    except UnknownVoice:
        return f"Back to the standard voice: this server's default voice '{name}' does not exist."
    if not voice.ready:
        return f"Back to the standard voice until this server's default voice '{name}' is ready."
    return f"Back to this server's default voice, '{name}'."
