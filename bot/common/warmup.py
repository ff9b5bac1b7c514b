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
from core.types import ChatMessage, ConversationKey, LLMOptions

log = logging.getLogger("doppel.ready")
log.setLevel(logging.INFO)  # the readiness line shows even when other logs are quieter

_KEY = ConversationKey("warm-up", "warm-up")  # speak() stores nothing, so this key never reaches the history


def _load(services: Services) -> None:
    services.recognizer.warm_up()
    services.chat_model.warm_up()
    for synthesizer in services.synthesizers:
        synthesizer.warm_up()


async def warm_up(services: Services) -> float:
    """Seconds it took. The models load in a worker thread, the language model writes a word, one sentence is
    spoken in the configured voice (the voice worker starts and loads that voice) and heard back by the
    recognizer (its VAD and decoder). A configured voice that is not usable yet, or a provider that does not
    answer, is reported and skipped: the channel still starts."""
    start = time.perf_counter()
    await asyncio.to_thread(_load, services)
    settings = services.settings
    persona = services.personas.get(settings.persona)
    # a first generation costs more than the load (buffers, caches, a hosted provider's connection): write a word
    try:
        async for _ in services.chat_model.stream([ChatMessage("system", persona.system_prompt), ChatMessage("user", "Hello!")],
                                                  LLMOptions(max_tokens=2)):
            pass
    except DoppelError as exc:
        log.warning("warm-up: the language model said %s: %s", exc.code, exc.message)
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
            await services.recognizer.transcribe(audio_ops.join(spoken), language)
        except DoppelError as exc:
            log.warning("warm-up: speech recognition said %s", exc.code)
    return time.perf_counter() - start


async def ready(services: Services, channel: str) -> None:
    """Warm every engine, then say so in one log line: the channel takes messages from here on."""
    log.info("%s: warming the engines ...", channel)
    seconds = await warm_up(services)
    log.info("%s: ready, engines warmed in %.1f s", channel, seconds)
