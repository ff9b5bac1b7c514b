"""Small numpy-only audio helpers the pipeline and workers share."""
from __future__ import annotations

import numpy as np

from core.types import Audio


def rms_db(samples: np.ndarray) -> float:
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * float(np.log10(max(rms, 1e-6)))


def match_loudness(audio: Audio, target_db: float = -20.0, peak: float = 0.97) -> Audio:
    """Bring speech to a common level so chunks made separately sound like one take."""
    voiced = audio.samples[np.abs(audio.samples) > 1e-3]
    gain = 10 ** ((target_db - rms_db(voiced if voiced.size else audio.samples)) / 20.0)
    out = audio.samples * gain
    top = float(np.max(np.abs(out))) if out.size else 0.0
    if top > peak:
        out = out * (peak / top)
    return Audio(out.astype(np.float32), audio.sample_rate)


def join(parts: list[Audio], crossfade_ms: float = 15.0, gap_ms: float = 120.0) -> Audio:
    """Concatenate chunks with a short pause and equal-power crossfades, so the seams make no clicks."""
    if not parts:
        raise ValueError("nothing to join")
    rate = parts[0].sample_rate
    if any(p.sample_rate != rate for p in parts):
        raise ValueError("chunks to join must share one sample rate")
    fade = max(1, int(rate * crossfade_ms / 1000))
    gap = np.zeros(int(rate * gap_ms / 1000), dtype=np.float32)
    out = _fade_edges(parts[0].samples, fade)
    for part in parts[1:]:
        out = np.concatenate([out, gap, _fade_edges(part.samples, fade)])
    return Audio(out.astype(np.float32), rate)


def _fade_edges(x: np.ndarray, n: int) -> np.ndarray:
    x = x.astype(np.float32, copy=True)
    n = min(n, len(x) // 2)
    if n > 0:
        ramp = np.sin(np.linspace(0, np.pi / 2, n, dtype=np.float32)) ** 2
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def trim(audio: Audio, start: float, end: float) -> Audio:
    a = max(0, int(start * audio.sample_rate))
    b = min(len(audio.samples), int(end * audio.sample_rate))
    return Audio(audio.samples[a:b], audio.sample_rate)


def resample_linear(audio: Audio, rate: int) -> Audio:
    """Cheap resampling for analysis paths; media.resample is the high-quality one for output."""
    if audio.sample_rate == rate:
        return audio
    n = int(round(len(audio.samples) * rate / audio.sample_rate))
    t = np.linspace(0, len(audio.samples) - 1, n)
    return Audio(np.interp(t, np.arange(len(audio.samples)), audio.samples).astype(np.float32), rate)


def waveform_bytes(audio: Audio, points: int = 256) -> bytes:
    """Peak amplitude per slice, one byte each (0..255): the shape Discord shows for a voice message."""
    x = np.abs(audio.samples)
    if x.size == 0:
        return bytes(points)
    points = min(points, max(1, x.size))
    edges = np.linspace(0, x.size, points + 1).astype(int)
    peaks = np.array([x[a:b].max() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])])
    top = peaks.max() or 1.0
    return bytes(np.clip(peaks / top * 255, 0, 255).astype(np.uint8).tolist())
