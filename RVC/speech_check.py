"""Is this converted audio speech? The last check before a voice engine's output is sent to anyone.

A voice model that learned nothing (too few steps, a broken artifact) does not fail: it returns a
sentence-long hiss. Three cheap signs tell that from speech: how much of it Silero VAD hears as speech,
a DC offset no microphone or vocoder of speech leaves, and energy spread up to the top of the band
where speech keeps most of its energy below 4 kHz. Thresholds come from measurements on real recordings,
the base TTS, trained lite voices and untrained ones (docs/voice-cloning.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VAD_RATE = 16_000
VAD_WINDOW = 512  # Silero's window at 16 kHz: 32 ms


@dataclass(frozen=True)
class SpeechLimits:
    min_speech_share: float = 0.5  # of the audible 32-ms windows, the share the VAD hears as speech
    max_dc_offset: float = 0.2  # |mean| over RMS
    max_high_band_share: float = 0.35  # energy above 4 kHz over all energy
    silence_db: float = -50.0  # windows quieter than this are pauses, not counted either way


@dataclass(frozen=True)
class SpeechVerdict:
    speech_share: float
    dc_offset: float
    high_band_share: float
    problem: str  # "" when it is speech

    @property
    def is_speech(self) -> bool:
        return not self.problem


def _to_vad_rate(samples: np.ndarray, rate: int) -> np.ndarray:
    if rate == VAD_RATE:
        return samples.astype(np.float32, copy=False)
    from RVC.features import to_rate

    return to_rate(samples, rate, VAD_RATE)


def _speech_share(x: np.ndarray, silence_db: float) -> float:
    from faster_whisper.vad import get_vad_model

    n = len(x) // VAD_WINDOW
    if n == 0:
        return 0.0
    windows = x[: n * VAD_WINDOW].reshape(n, VAD_WINDOW).astype(np.float64)
    audible = 10 * np.log10(np.mean(windows ** 2, axis=1) + 1e-12) > silence_db
    if not audible.any():
        return 0.0
    probs = np.asarray(get_vad_model()(np.ascontiguousarray(x[: n * VAD_WINDOW], dtype=np.float32))).reshape(-1)[:n]
    return float(np.mean(probs[audible] > 0.5))


def _high_band_share(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / rate)
    total = float(spectrum[1:].sum())
    return float(spectrum[freqs > 4000].sum() / total) if total > 0 else 0.0


def check_speech(samples: np.ndarray, rate: int, limits: SpeechLimits | None = None) -> SpeechVerdict:
    """Measures the three signs; `problem` names the first one that says this is not speech."""
    limits = limits or SpeechLimits()
    x = np.nan_to_num(np.asarray(samples, dtype=np.float32))
    if x.size < rate // 10:
        return SpeechVerdict(0.0, 0.0, 0.0, "no audio")
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    if rms < 1e-4:
        return SpeechVerdict(0.0, 0.0, 0.0, "silence")
    dc = abs(float(np.mean(x, dtype=np.float64))) / rms
    high = _high_band_share(x - np.mean(x), rate)
    share = _speech_share(_to_vad_rate(x - np.mean(x), rate), limits.silence_db)
    problem = ""
    if share < limits.min_speech_share:
        problem = f"the voice activity detector hears speech in only {share:.0%} of it"
    elif dc > limits.max_dc_offset:
        problem = f"a DC offset of {dc:.2f} of its level"
    elif high > limits.max_high_band_share:
        problem = f"{high:.0%} of its energy above 4 kHz, like hiss"
    return SpeechVerdict(share, dc, high, problem)
