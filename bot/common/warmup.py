"""Loading and exercising every configured engine before a channel takes its first message.

Models load on first use otherwise, so the first visitor after a start would wait for all of them at once.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.wiring import Services
from core import audio as audio_ops
from core.errors import AnswerCut, DoppelError
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


async def warm_up(services: Services, *, voice: str | None = None, avatar: str | None = None) -> float:
    """Seconds it took. The models load in a worker thread, the language model writes a word, one sentence is
    spoken in the configured voice, or `voice` (the voice worker starts and loads that voice), and heard back by
    the recognizer (its VAD and decoder); with `avatar`, that face says it once too (the renderer loads). A voice
    that is not usable yet, or a provider that does not answer, is reported and skipped: the channel still starts."""
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
        if not (isinstance(exc, AnswerCut) and exc.at_limit):  # at the limit: the two tokens asked for were written
            log.warning("warm-up: the language model said %s: %s", exc.code, exc.message)
    request = ReplyRequest(key=_KEY, persona=persona, text="Hello, I am ready.", voice=voice or settings.voice or persona.voice)
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
        renderer = services.pipeline.renderer
        if avatar and renderer is not None and await renderer.is_ready(avatar):
            try:
                await renderer.render(audio_ops.join(spoken), avatar, request.text or "")
            except DoppelError as exc:
                log.warning("warm-up: the avatar %r said %s: %s", avatar, exc.code, exc.message)
    return time.perf_counter() - start


async def ready(services: Services, channel: str) -> None:
    """Warm every engine, then say so in one log line: the channel takes messages from here on."""
    log.info("%s: warming the engines ...", channel)
    seconds = await warm_up(services)
    log.info("%s: ready, engines warmed in %.1f s", channel, seconds)


async def serve_while_warming(services: Services, channel: str, serve: Callable[[], Awaitable[None]]) -> None:
    """A bot polls and logs in at once while its engines warm (40-68 s on a busy machine, when it took nothing
    until then): messages are taken, acknowledged by the chat action, and answered once the warm-up is done. A
    warm-up that fails stops the channel with its error, as it did when it ran first."""
    warming = asyncio.create_task(ready(services, channel))
    services.warming = warming
    serving = asyncio.ensure_future(serve())
    try:
        await asyncio.wait({warming, serving}, return_when=asyncio.FIRST_COMPLETED)
        if warming.done() and not warming.cancelled() and warming.exception() is not None:
            raise warming.exception()  # type: ignore[misc]
        await serving
    finally:
        for task in (serving, warming):
            task.cancel()
        await asyncio.gather(serving, warming, return_exceptions=True)
        services.warming = None
