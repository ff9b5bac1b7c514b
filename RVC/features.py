"""Analysis shared by the engines: speaker-independent content features, F0, resampling.

Everything runs at 16 kHz with a 10 ms hop (100 frames a second); Whisper's encoder gives 50 frames a
second, so content is repeated twice per F0 frame by the models that consume it.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

RATE = 16_000
HOP = 160  # 10 ms
CONTENT_HOP = 320  # Whisper's encoder: 20 ms


def to_rate(samples: np.ndarray, src: int, dst: int = RATE) -> np.ndarray:
    """Polyphase resampling: clean enough for a vocoder's input and cheap on two cores."""
    if src == dst:
        return samples.astype(np.float32, copy=False)
    from scipy.signal import resample_poly  # here, so training on a bare GPU machine needs no scipy

    g = np.gcd(src, dst)
    return resample_poly(samples, dst // g, src // g).astype(np.float32)


class WhisperContent:
    """Whisper encoder output as content features. Its last layer keeps what was said and little of who said it."""

    def __init__(self, model_dir: Path, threads: int = 2) -> None:
        self.model_dir = Path(model_dir)
        self.threads = threads
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        if self._model is None:
            from faster_whisper import WhisperModel

            self._model = WhisperModel(str(self.model_dir), device="cpu", compute_type="int8", cpu_threads=self.threads)
        return self._model

    @property
    def dims(self) -> int:
        return 512 if "base" in self.model_dir.name else 384

    def encode(self, samples: np.ndarray) -> np.ndarray:
        """16 kHz samples → [frames, dims] float32 at 50 frames a second (len(samples) // 320 frames)."""
        n = len(samples) // CONTENT_HOP
        if n == 0:
            return np.zeros((0, self.dims), np.float32)
        window = 1500 * CONTENT_HOP  # the encoder takes at most 30 s at once
        parts = [self._encode_window(samples[a:a + window]) for a in range(0, n * CONTENT_HOP, window)]
        return np.concatenate(parts)[:n]

    def _encode_window(self, samples: np.ndarray) -> np.ndarray:
        import ctranslate2

        n = max(1, len(samples) // CONTENT_HOP)
        with self._lock:
            model = self._load()
            mel = model.feature_extractor(samples.astype(np.float32), padding=CONTENT_HOP)
            if mel.shape[1] < 2 * n:
                mel = np.pad(mel, ((0, 0), (0, 2 * n - mel.shape[1])), mode="edge")
            mel = np.ascontiguousarray(mel[:, : 2 * n], dtype=np.float32)
            out = model.model.encode(ctranslate2.StorageView.from_array(mel[None]), to_cpu=True)
        return np.asarray(out, dtype=np.float32)[0, :n]


def bundled_content(cache_dir: Path, threads: int = 2) -> WhisperContent:
    """The multilingual base encoder: it is shipped with the project and hears every language the bot speaks."""
    from adapters.whisper_models import multilingual_base_dir

    return WhisperContent(multilingual_base_dir(cache_dir), threads)


def f0_yin(samples: np.ndarray, fmin: float = 60.0, fmax: float = 700.0, threshold: float = 0.15,
           window: int = 1024) -> np.ndarray:
    """F0 in Hz every 10 ms (0 where unvoiced), by YIN's cumulative-mean-normalised difference, all frames at once."""
    x = np.pad(samples.astype(np.float64), (window // 2, window // 2 + HOP))
    n = max(1, len(samples) // HOP)
    idx = np.arange(n)[:, None] * HOP + np.arange(window)[None, :]
    frames = x[idx]
    frames -= frames.mean(axis=1, keepdims=True)
    tau_max = min(int(RATE / fmin), window // 2)
    tau_min = int(RATE / fmax)
    sq = np.cumsum(np.pad(frames ** 2, ((0, 0), (1, 0))), axis=1)
    w = window - tau_max
    # d(tau) = energy of the first w samples + energy of the w samples at tau - 2 * their correlation
    e0 = sq[:, w:w + 1] - sq[:, 0:1]
    taus = np.arange(tau_max + 1)
    e_tau = sq[:, taus + w] - sq[:, taus]
    corr = _windowed_acf(frames, w, tau_max)
    d = e0 + e_tau - 2 * corr
    d[:, 0] = 0
    cum = np.cumsum(d[:, 1:], axis=1) / np.arange(1, tau_max + 1)
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] / np.maximum(cum, 1e-12)
    f0 = np.zeros(n, dtype=np.float32)
    below = cmnd[:, tau_min:] < threshold
    has = below.any(axis=1)
    first = np.argmax(below, axis=1) + tau_min
    loud = np.sqrt(e0[:, 0] / w) > 3e-3
    for i in np.nonzero(has & loud)[0]:
        t = first[i]
        while t + 1 <= tau_max and cmnd[i, t + 1] < cmnd[i, t]:
            t += 1
        if 1 <= t < tau_max:  # parabolic interpolation between lags for sub-sample accuracy
            a, b, c = cmnd[i, t - 1], cmnd[i, t], cmnd[i, t + 1]
            den = a - 2 * b + c
            shift = 0.5 * (a - c) / den if abs(den) > 1e-12 else 0.0
            t = t + float(np.clip(shift, -1, 1))
        f0[i] = RATE / t
    return _clean_f0(f0)


def _windowed_acf(frames: np.ndarray, w: int, tau_max: int) -> np.ndarray:
    """sum_{j<w} x[j] x[j+tau] for every tau, through one FFT correlation."""
    size = 1 << int(np.ceil(np.log2(frames.shape[1] + w)))
    a = np.fft.rfft(frames[:, :w], size)
    b = np.fft.rfft(frames, size)
    return np.fft.irfft(np.conj(a) * b, size)[:, : tau_max + 1]


def _clean_f0(f0: np.ndarray) -> np.ndarray:
    """Drop one-frame voicing blips and smooth octave jumps with a 3-frame median over voiced runs."""
    voiced = f0 > 0
    keep = voiced.copy()
    keep[1:-1] &= voiced[:-2] | voiced[2:]
    f0 = np.where(keep, f0, 0).astype(np.float32)
    out = f0.copy()
    for i in range(1, len(f0) - 1):
        window = f0[i - 1:i + 2]
        if f0[i] > 0 and (window > 0).all():
            out[i] = np.median(window)
    return out


def log_f0_stats(f0: np.ndarray) -> tuple[float, float]:
    voiced = f0[f0 > 0]
    if voiced.size < 10:
        return float(np.log(150.0)), 0.2
    logs = np.log(voiced)
    return float(np.median(logs)), float(max(np.std(logs), 0.05))


def convert_f0(f0: np.ndarray, source: tuple[float, float], target: tuple[float, float], semitones: float = 0.0) -> np.ndarray:
    """Move the source's pitch contour into the target's range (log-domain mean and spread), then shift it."""
    out = np.zeros_like(f0)
    v = f0 > 0
    ratio = float(np.clip(target[1] / source[1], 0.5, 2.0))
    out[v] = np.exp((np.log(f0[v]) - source[0]) * ratio + target[0] + semitones * np.log(2) / 12)
    return out.astype(np.float32)
