"""eSpeak NG through its C API (the library espeakng-loader ships). No longer one of the product's voices: Whisper
read its Russian and Portuguese back at 164 % and 62 % WER (bench/language.py --part voices compares it)."""
from __future__ import annotations

import asyncio
import ctypes
import threading
from typing import Any

import numpy as np

from core.types import Audio

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

# doppel language code → espeak voice name
VOICE_NAMES = {"zh": "cmn", "en": "en-us", "pt": "pt-br"}


class EspeakSynthesizer:
    """The C library keeps global state, so one process-wide lock guards every call."""

    _lock = threading.Lock()
    _lib: ctypes.CDLL | None = None
    _rate = 22050

    def __init__(self, rate_wpm: int = 165) -> None:
        self.rate_wpm = rate_wpm

    @classmethod
    def _load(cls) -> ctypes.CDLL:
        if cls._lib is None:
            import espeakng_loader

            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            lib.espeak_Initialize.restype = ctypes.c_int
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
            if rate <= 0:
                raise RuntimeError("espeak-ng failed to initialize")
            cls._rate = rate
            cls._lib = lib
        assert cls._lib is not None
        return cls._lib

    def warm_up(self) -> None:
        with self._lock:
            self._load()

    def supports(self, language: str) -> bool:
        with self._lock:
            lib = self._load()
            return bool(lib.espeak_SetVoiceByName(self._voice_name(language).encode()) == 0)

    @staticmethod
    def _voice_name(language: str) -> str:
        base = language.split("-")[0].lower()
        return VOICE_NAMES.get(base, base)

    async def synthesize(self, text: str, language: str) -> Audio:
        return await asyncio.to_thread(self.synthesize_sync, text, language)

    def synthesize_sync(self, text: str, language: str) -> Audio:
        pieces: list[np.ndarray] = []

        def on_audio(wav: Any, count: int, _events: Any) -> int:
            if count > 0:
                pieces.append(np.ctypeslib.as_array(wav, shape=(count,)).astype(np.float32) / 32768.0)
            return 0

        callback = _SYNTH_CALLBACK(on_audio)
        data = text.encode("utf-8") + b"\0"
        with self._lock:
            lib = self._load()
            if lib.espeak_SetVoiceByName(self._voice_name(language).encode()) != 0:
                raise ValueError(f"espeak-ng has no voice for '{language}'")
            lib.espeak_SetParameter(1, self.rate_wpm, 0)  # espeakRATE
            lib.espeak_SetSynthCallback(callback)
            lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
            lib.espeak_Synchronize()
        samples = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        return Audio(samples, self._rate)
