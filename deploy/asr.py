"""Speech recognition as a Serve deployment: the configured Whisper models, loaded once per replica."""
from __future__ import annotations

from typing import Any

import numpy as np
from ray import serve

from core.types import Audio, Transcript
from deploy.wire import carry, replica_settings


@serve.deployment
class SpeechRecognition:
    def __init__(self, settings: dict[str, Any]) -> None:
        from adapters.engines import build_recognizer

        self.recognizer = build_recognizer(replica_settings(settings))
        self.recognizer.warm_up()

    async def transcribe(self, samples: np.ndarray, rate: int, language: str | None) -> Transcript:
        try:
            return await self.recognizer.transcribe(Audio(samples, rate), language)
        except Exception as exc:
            raise carry(exc) from None

    async def detect_language(self, samples: np.ndarray, rate: int) -> dict[str, float]:
        try:
            return await self.recognizer.detect_language(Audio(samples, rate))
        except Exception as exc:
            raise carry(exc) from None

    def language_probability(self, samples: np.ndarray, rate: int, language: str) -> float | None:
        try:
            return self.recognizer.language_probability(Audio(samples, rate), language)
        except Exception as exc:
            raise carry(exc) from None
