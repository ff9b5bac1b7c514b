"""One conversation turn, the same for every channel: resolve the chat's settings, run the pipeline."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import AsyncIterator

from adapters.media import decode_audio
from bot.wiring import Services
from core.pipeline import ReplyRequest
from core.types import ConversationKey, Frame, ReplyDone

log = logging.getLogger("doppel.dialogue")


@dataclass(frozen=True)
class Incoming:
    """A user's message as any channel sees it. Ids carry a platform prefix ("tg:42") so channels never collide."""

    user_id: str
    chat_id: str
    audio: bytes | None = None
    text: str | None = None
    display_name: str = ""


class Dialogue:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def request_for(self, msg: Incoming, *, speak: bool = True) -> ReplyRequest:
        s = self.services
        chat = await s.chats.get(msg.chat_id)
        persona = s.personas.get(chat.persona or s.settings.persona)
        language = chat.language or s.settings.language
        audio = decode_audio(msg.audio) if msg.audio is not None else None
        return ReplyRequest(
            key=ConversationKey(msg.user_id, msg.chat_id),
            persona=persona,
            audio=audio,
            text=msg.text,
            voice=chat.voice or s.settings.voice or persona.voice,
            avatar=chat.avatar or s.settings.avatar or persona.avatar,
            language=None if language == "auto" else language,
            speak=speak,
        )

    async def reply(self, msg: Incoming, *, speak: bool = True) -> AsyncIterator[Frame]:
        await self.services.users.touch(msg.user_id, msg.display_name)
        request = await self.request_for(msg, speak=speak)
        async for frame in self.services.pipeline.run(request):
            if isinstance(frame, ReplyDone):
                # one line per answered message, whatever the channel
                log.info("answered %s in %s (%s, %d chars): %s", msg.user_id, msg.chat_id, "voice" if msg.audio else "text",
                         len(frame.text), "  ".join(f"{t.stage}={t.seconds:.2f}s" for t in frame.timings))
            yield frame
