"""Turning a speaker's recordings into the lite engine's training set (runs where Whisper is: the CPU host).

The set is a handful of flat arrays, so it can be saved as one .npz and trained on anywhere torch runs.
Content features are computed from the clip as recorded and from copies whose pitch and formants are
lowered by a few amounts (a deeper voice saying the same words on the same frames). Training on all of them
teaches the network that the content stream does not decide the timbre, which is what lets a male base
voice come out in the speaker's voice; several amounts rather than one keep it from learning one shift.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from RVC.features import CONTENT_HOP, HOP, RATE, WhisperContent, f0_yin, log_f0_stats, to_rate

PERTURBATIONS = (0.72, 0.8, 0.88)  # each copy's frequencies are scaled by one of these


@dataclass
class Projection:
    """PCA of the Whisper features: fewer dimensions to learn from, and a smaller set to ship to a GPU."""

    mean: np.ndarray  # [D]
    basis: np.ndarray  # [D, K]

    def apply(self, feats: np.ndarray) -> np.ndarray:
        return ((feats - self.mean) @ self.basis).astype(np.float32)

    @staticmethod
    def fit(feats: np.ndarray, dims: int) -> "Projection":
        mean = feats.mean(axis=0)
        sample = feats[:: max(1, len(feats) // 20000)] - mean
        _, s, vt = np.linalg.svd(sample, full_matrices=False)
        basis = vt[:dims].T / (s[:dims, None].T / np.sqrt(len(sample)))  # whitened: every kept axis has unit spread
        return Projection(mean.astype(np.float32), basis.astype(np.float32))


def perturbed_content(content: WhisperContent, samples: np.ndarray, frames: int, factor: float) -> np.ndarray:
    """Content of the clip played lower (every frequency × factor), stretched back onto the clip's own frames."""
    low = to_rate(samples, int(RATE * factor), RATE)
    feats = content.encode(low)
    if len(feats) < 2:
        return np.repeat(feats[:1], frames, axis=0) if len(feats) else np.zeros((frames, content.dims), np.float32)
    src = np.linspace(0, len(feats) - 1, frames)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, len(feats) - 1)
    w = (src - lo)[:, None]
    return (feats[lo] * (1 - w) + feats[hi] * w).astype(np.float32)


CONTENT_SCALE = 1 / 24  # whitened features in int8: ±5.3 standard deviations, steps far finer than their noise


def quantize(feats: np.ndarray) -> np.ndarray:
    return np.clip(np.round(feats / CONTENT_SCALE), -127, 127).astype(np.int8)


def build_dataset(clips: list[np.ndarray], content: WhisperContent, dims: int = 128,
                  progress=None, projection: Projection | None = None,
                  perturbations: tuple[float, ...] = PERTURBATIONS) -> dict[str, np.ndarray]:
    """16 kHz clips → {audio int16, content [N/2, dims] and content_low [copies, N/2, dims] int8 (× content_scale),
    f0 [N], projection, f0 stats, clip_frames (each kept clip's length in 10-ms frames)}.

    `projection`: the base model's (a voice fine-tuned from it must see content in the same coordinates);
    None fits one on these clips."""
    audio, f0s, feats, lows, kept = [], [], [], [], []
    for i, samples in enumerate(clips):
        n50 = len(samples) // CONTENT_HOP
        if n50 < 8:
            continue
        samples = samples[: n50 * CONTENT_HOP]
        c = content.encode(samples)[:n50]
        if len(c) < n50:
            c = np.pad(c, ((0, n50 - len(c)), (0, 0)), mode="edge")
        f0 = f0_yin(samples)[: 2 * n50]
        if len(f0) < 2 * n50:
            f0 = np.pad(f0, (0, 2 * n50 - len(f0)))
        feats.append(c)
        lows.append(np.stack([perturbed_content(content, samples, n50, f) for f in perturbations]))
        kept.append(2 * n50)
        f0s.append(f0)
        audio.append(np.clip(samples * 32767, -32768, 32767).astype(np.int16))
        if progress is not None:
            progress(i + 1, len(clips))
    if not audio:
        raise ValueError("no clip is long enough to learn from")
    all_feats, all_lows = np.concatenate(feats), np.concatenate(lows, axis=1)
    proj = projection or Projection.fit(np.concatenate([all_feats, *all_lows]), min(dims, all_feats.shape[1]))
    f0 = np.concatenate(f0s)
    mu, sd = log_f0_stats(f0)
    assert len(f0) * HOP == sum(len(a) for a in audio)
    return {
        "audio": np.concatenate(audio),
        "content": quantize(proj.apply(all_feats)),
        "content_low": quantize(np.stack([proj.apply(low) for low in all_lows])),
        "content_scale": np.array(CONTENT_SCALE, np.float32),
        "f0": f0.astype(np.float32),
        "pca_mean": proj.mean, "pca_basis": proj.basis,
        "f0_stats": np.array([mu, sd], np.float32),
        "clip_frames": np.array(kept, np.int64),
    }


def compact(data: dict[str, np.ndarray], oggs: list[bytes]) -> dict[str, np.ndarray]:
    """The set with its audio as each clip's Ogg/Opus file instead of PCM: about an eighth of the size, which is
    what lets a set travel to a GPU machine. `oggs` are the kept clips' files, in order."""
    if len(oggs) != len(data["clip_frames"]):
        raise ValueError(f"{len(oggs)} files for {len(data['clip_frames'])} clips")
    out = {k: v for k, v in data.items() if k != "audio"}
    out["ogg"] = np.frombuffer(b"".join(oggs), np.uint8)
    out["ogg_sizes"] = np.array([len(o) for o in oggs], np.int64)
    return out


def _decode(ogg: bytes) -> np.ndarray:
    try:
        from adapters.media import decode_audio
    except ImportError:  # a bare GPU machine: soundfile's bundled libsndfile reads Ogg/Opus
        import io

        import soundfile

        samples, rate = soundfile.read(io.BytesIO(ogg), dtype="float32", always_2d=True)
        return to_rate(samples.mean(axis=1), rate, RATE)
    return decode_audio(ogg, RATE).samples


def expand(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A compact set back to PCM, each clip cut or padded to the frames its features were computed on."""
    if "ogg" not in data:
        return data
    blob = data["ogg"].tobytes()
    ends = np.cumsum(data["ogg_sizes"])
    parts = []
    for end, size, frames in zip(ends, data["ogg_sizes"], data["clip_frames"]):
        x = _decode(blob[end - size:end])[: frames * HOP]
        x = np.pad(x, (0, frames * HOP - len(x)))
        parts.append(np.clip(x * 32767, -32768, 32767).astype(np.int16))
    out = {k: v for k, v in data.items() if k not in ("ogg", "ogg_sizes")}
    out["audio"] = np.concatenate(parts)
    return out


def first_clips(data: dict[str, np.ndarray], minutes: float) -> dict[str, np.ndarray]:
    """The set cut to its first clips, at least `minutes` of speech (to measure how little a voice can learn from)."""
    frames = data["clip_frames"]
    k = int(np.searchsorted(np.cumsum(frames), minutes * 6000)) + 1
    n = int(frames[:k].sum())
    out = dict(data)
    out["clip_frames"] = frames[:k]
    out["f0"] = data["f0"][:n]
    out["content"] = data["content"][: n // 2]
    out["content_low"] = data["content_low"][:, : n // 2]
    out["audio"] = data["audio"][: n * HOP]
    out["f0_stats"] = np.array(log_f0_stats(out["f0"]), np.float32)
    return out
