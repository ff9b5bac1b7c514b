"""Loading and exercising every configured engine before a channel takes its first message.

Models load on first use otherwise, so the first visitor after a start would wait for all of them at once.
"""
from __future__ import annotations

import asyncio
import logging
import time

from bot.wiring import Services
from core import audio as audio_ops
from core.errors import DoppelError
from core.pipeline import ReplyRequest
from core.types import ConversationKey

log = logging.getLogger("doppel.ready")
log.setLevel(logging.INFO)  # the readiness line shows even when other logs are quieter

_KEY = ConversationKey("warm-up", "warm-up")  # speak() stores nothing, so this key never reaches the history


def _load(services: Services) -> None:
    for engine in (services.recognizer, services.chat_model, *services.synthesizers):
        warm = getattr(engine, "warm_up", None)
        if callable(warm):
            warm()


async def warm_up(services: Services) -> float:
    """Seconds it took. The models load in a worker thread; then one sentence is spoken in the configured voice
    (the voice worker starts and loads that voice) and heard back by the recognizer (its VAD and decoder).
    A configured voice that is not usable yet is reported and skipped: the channel still starts."""
    start = time.perf_counter()
    await asyncio.to_thread(_load, services)
    settings = services.settings
    persona = services.personas.get(settings.persona)
    request = ReplyRequest(key=_KEY, persona=persona, text="Hello, I am ready.", voice=settings.voice or persona.voice)
    try:
        spoken = [frame.audio async for frame in services.pipeline.speak(request)]
    except DoppelError as exc:
        log.warning("warm-up: the voice %r is not usable yet (%s); the first answer in it will load it",
                    request.voice, exc.message)
        spoken = [frame.audio async for frame in services.pipeline.speak(ReplyRequest(key=_KEY, persona=persona, text=request.text))]
    if spoken:
        language = None if settings.language == "auto" else settings.language
        try:
            await services.recognizer.transcribe(audio_ops.join(spoken), language)  # type: ignore[attr-defined]
        except DoppelError as exc:
            log.warning("warm-up: speech recognition said %s", exc.code)
    return time.perf_counter() - start


async def ready(services: Services, channel: str) -> None:
    """Warm every engine, then say so in one log line: the channel takes messages from here on."""
    log.info("%s: warming the engines ...", channel)
    seconds = await warm_up(services)
    log.info("%s: ready, engines warmed in %.1f s", channel, seconds)
