"""Text to speech as a Serve deployment: the first configured synthesizer that speaks the language speaks it."""
from __future__ import annotations

from typing import Any

import numpy as np
from ray import serve

from core.errors import EngineError
from deploy.wire import carry, replica_settings


@serve.deployment
class SpeechSynthesis:
    def __init__(self, settings: dict[str, Any]) -> None:
        from adapters.engines import build_synthesizers

        self.synthesizers = build_synthesizers(replica_settings(settings))
        self.synthesizers[0].warm_up()  # the others load on their language's first sentence

    async def synthesize(self, text: str, language: str) -> tuple[np.ndarray, int]:
        try:
            for synthesizer in self.synthesizers:
                if synthesizer.supports(language):
                    audio = await synthesizer.synthesize(text, language)
                    return audio.samples, audio.sample_rate
            raise EngineError(f"No speech synthesizer here speaks '{language}'.")
        except Exception as exc:
            raise carry(exc) from None

