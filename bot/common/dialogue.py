"""One conversation turn, the same for every channel: resolve the chat's settings, run the pipeline."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import AsyncGenerator

from adapters.media import decode_audio
from bot.wiring import Services
from core.pipeline import ReplyRequest
from core.types import Audio, ConversationKey, Frame, ReplyDone

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

    async def request_for(self, msg: Incoming, *, speak: bool = True, audio: Audio | None = None) -> ReplyRequest:
        """`audio`: speech already decoded (live talk hears it as samples), instead of `msg.audio`'s bytes."""
        s = self.services
        chat = await s.chats.get(msg.chat_id)
        persona = s.personas.get(chat.persona or s.settings.persona)
        language = (chat.language or s.settings.language).lower()
        extra = chat.settings or {}
        if audio is None and msg.audio is not None:
            # off the event loop, and bounded by the limit: a long file stops costing at the limit
            audio = await asyncio.to_thread(decode_audio, msg.audio, max_seconds=s.settings.max_input_seconds)
        return ReplyRequest(
            key=ConversationKey(msg.user_id, msg.chat_id),
            persona=persona,
            audio=audio,
            text=msg.text,
            voice=chat.voice or s.settings.voice or persona.voice,
            avatar=chat.avatar or s.settings.avatar or persona.avatar,
            language=None if language == "auto" else language,
            speak=speak,
            last_language=extra.get("last_language"),
            noticed=frozenset(extra.get("language_notices", ())),
            unspoken_noticed=frozenset(extra.get("unspoken_notices", ())),
        )

    async def reply(self, msg: Incoming, *, speak: bool = True, audio: Audio | None = None,
                    live: bool = False, video_parts: bool = False) -> AsyncGenerator[Frame, None]:
        """`live`: the answer ends at speech (the live page draws the face as it speaks) and is not stored;
        the caller stores what the person heard with `remember_heard`. `video_parts`: the face comes a
        sentence at a time (a page that plays the voice as it comes shows the face with it)."""
        warming = self.services.warming
        if warming is not None and not warming.done():
            # taken at once, answered once the engines are warm; the channel shows its chat action meanwhile
            await asyncio.wait({warming})
        await self.services.users.touch(msg.user_id, msg.display_name)
        request = await self.request_for(msg, speak=speak, audio=audio)
        if live:
            request = replace(request, video=False, remember=False)
        elif video_parts:
            request = replace(request, video_parts=True)
        async for frame in self.services.pipeline.run(request):
            if isinstance(frame, ReplyDone):
                # one line per answered message, whatever the channel
                log.info("answered %s in %s (%s, %d chars): %s", msg.user_id, msg.chat_id,
                         "live" if live else "voice" if msg.audio else "text",
                         len(frame.text), "  ".join(f"{t.stage}={t.seconds:.2f}s" for t in frame.timings))
                await self._remember_language(msg.chat_id, request, frame)
            yield frame

    async def remember_heard(self, msg: Incoming, said: str, heard: str) -> None:
        """A live exchange, as it was heard: the answer cut where the person interrupted it."""
        if said.strip() and heard.strip():
            await self.services.history.append_exchange(ConversationKey(msg.user_id, msg.chat_id), said, heard)

    async def _remember_language(self, chat_id: str, request: ReplyRequest, done: ReplyDone) -> None:
        """The user's language breaks the next detection's near-ties; a notice given is not given again."""
        values: dict[str, object] = {}
        if done.user_language and done.user_language != request.last_language:
            values["last_language"] = done.user_language
        if done.notice_given:
            values["language_notices"] = sorted(request.noticed | {done.user_language})
        if done.unspoken_notice_given:
            values["unspoken_notices"] = sorted(request.unspoken_noticed | {done.language})
        if values:
            await self.services.chats.set(chat_id, **values)
