"""Speaking a given text in a voice (a /say command): the pipeline's speech stages without the language model.

It goes through ReplyPipeline.speak, so a voice sounds the same here as in a reply.
"""
from __future__ import annotations

from dataclasses import replace

from bot.common.dialogue import Dialogue, Incoming
from core import audio as audio_ops
from core.errors import BadInput
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
    request = replace(request, text=text)
    parts = [frame.audio async for frame in dialogue.services.pipeline.speak(request)]
    return audio_ops.join(parts)
