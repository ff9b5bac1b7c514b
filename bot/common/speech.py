"""Speaking a given text in a voice (a /say command): the pipeline's speech stages without the language model.

It goes through the pipeline's own voice resolution, synthesizer choice and conversion, so a voice sounds
the same here as in a reply; only the sentence source differs.
"""
from __future__ import annotations

from dataclasses import replace

from bot.common.dialogue import Dialogue, Incoming
from core import audio as audio_ops
from core.errors import BadInput
from core.pipeline import Stopwatch
from core.splitter import SentenceSplitter
from core.types import Audio

MAX_CHARS = 1000


async def say(dialogue: Dialogue, msg: Incoming, *, voice: str | None = None) -> Audio:
    """`msg.text` spoken in `voice`, or in the chat's voice when None."""
    text = " ".join((msg.text or "").split())
    if not text:
        raise BadInput("Give me some text to say.")
    if len(text) > MAX_CHARS:
        raise BadInput(f"That is {len(text)} characters; I can say up to {MAX_CHARS} at once.")
    request = await dialogue.request_for(msg)
    if voice:
        request = replace(request, voice=voice)
    pipeline = dialogue.services.pipeline
    resolved = await pipeline._resolve_voice(request)
    language = request.persona.language if request.persona.language != "auto" else (request.language or "en")
    synthesizer = pipeline._synthesizer_for(language)
    splitter = SentenceSplitter(pipeline.config.splitter)
    sentences = splitter.feed(text) + splitter.flush()
    watch = Stopwatch()
    parts = [await pipeline._speak(s, language, synthesizer, resolved, watch) for s in sentences if s.strip()]
    return audio_ops.join(parts)
