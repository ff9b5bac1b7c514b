"""The rvc engine: a user's RVC v2 model (+ optional retrieval index) converting base-TTS speech.

Voice params: model (file in RVC/models or a path), index (optional), index_rate (0..1, default 0.75),
pitch_shift (semitones), f0_method ("yin" | "pyin"), speaker_id, content_model (default hubert_base.pt).
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.errors import BadInput, EngineError
from RVC.features import RATE, f0_yin, to_rate
from RVC.hubert import Hubert, load_hubert
from RVC.rvc_model import RvcSynthesizer, load_checkpoint

F0_METHODS = ("yin", "pyin")


def coarse_f0(f0: np.ndarray) -> np.ndarray:
    """Hz → the 1..255 mel-spaced bins RVC's pitch embedding was trained on (1 = unvoiced)."""
    lo, hi = 1127 * np.log(1 + 50 / 700), 1127 * np.log(1 + 1100 / 700)
    mel = 1127 * np.log1p(np.maximum(f0, 0) / 700)
    bins = np.where(mel > 0, (mel - lo) * 254 / (hi - lo) + 1, 1)
    return np.clip(np.rint(bins), 1, 255).astype(np.int64)


def pitch(samples: np.ndarray, method: str) -> np.ndarray:
    if method == "yin":
        return f0_yin(samples)
    if method == "pyin":
        import librosa

        f0, voiced, _ = librosa.pyin(samples, fmin=60, fmax=700, sr=RATE, frame_length=1024, hop_length=160)
        return np.where(voiced, np.nan_to_num(f0), 0).astype(np.float32)
    raise BadInput(f"Unknown F0 method '{method}'; use one of {', '.join(F0_METHODS)}.")


class FeatureIndex:
    """Retrieval over the training set's content features: faiss when installed, else exact k-NN in numpy."""

    def __init__(self, path: Path) -> None:
        self.faiss_index = None
        try:
            if path.suffix == ".npy":
                self.vectors = np.load(path).astype(np.float32)
            else:
                import faiss  # optional: absent, a .npy of the same vectors serves

                index = faiss.read_index(str(path))
                self.vectors = index.reconstruct_n(0, index.ntotal).astype(np.float32)
                self.faiss_index = index
        except ImportError as exc:
            raise EngineError(f"Reading '{path.name}' needs faiss; install faiss-cpu or give the features as .npy.") from exc
        except Exception as exc:
            raise EngineError(f"The index '{path.name}' could not be read.", detail=repr(exc)) from exc
        if self.vectors.ndim != 2 or self.vectors.shape[1] != 768:
            raise EngineError(f"The index '{path.name}' does not hold 768-d content features.")
        self.norms = (self.vectors ** 2).sum(axis=1)

    def blend(self, feats: np.ndarray, rate: float, k: int = 8) -> np.ndarray:
        """Pull each frame toward its k nearest training frames (inverse-square-distance weights)."""
        if rate <= 0:
            return feats
        k = min(k, len(self.vectors))
        if self.faiss_index is not None:
            dist, idx = self.faiss_index.search(feats.astype(np.float32), k)
        else:
            d = (feats ** 2).sum(axis=1)[:, None] - 2 * feats @ self.vectors.T + self.norms[None]
            idx = np.argpartition(d, k - 1, axis=1)[:, :k]
            dist = np.take_along_axis(d, idx, axis=1)
        w = 1 / np.square(np.maximum(dist, 1e-9))
        w /= w.sum(axis=1, keepdims=True)
        near = (self.vectors[idx] * w[..., None]).sum(axis=1)
        return (rate * near + (1 - rate) * feats).astype(np.float32)


class RvcEngine:
    name = "rvc"

    def __init__(self, models_dir: Path, device: str = "cpu", threads: int = 2) -> None:
        self.models_dir = Path(models_dir)
        self.device = device if device != "cuda" or torch.cuda.is_available() else "cpu"
        self.threads = threads
        self._models: dict[str, tuple[RvcSynthesizer, dict]] = {}
        self._content: dict[str, Hubert] = {}
        self._indexes: dict[str, FeatureIndex] = {}
        self._lock = threading.Lock()

    def _path(self, name: str) -> Path:
        p = Path(name)
        p = p if p.is_absolute() or p.exists() else self.models_dir / p
        if not p.is_file():
            raise EngineError(f"The file '{p.name}' is not in {self.models_dir}; see README, 'Voice cloning'.")
        return p

    def model(self, name: str) -> RvcSynthesizer:
        key = str(self._path(name))
        with self._lock:
            if key not in self._models:  # a damaged file raises here and is not cached: fixing it needs no restart
                self._models[key] = load_checkpoint(Path(key), self.device)
            return self._models[key][0]

    def content(self, name: str) -> Hubert:
        key = str(self._path(name))
        with self._lock:
            if key not in self._content:
                self._content[key] = load_hubert(Path(key)).to(self.device)
            return self._content[key]

    def index(self, name: str) -> FeatureIndex:
        key = str(self._path(name))
        with self._lock:
            if key not in self._indexes:
                self._indexes[key] = FeatureIndex(Path(key))
            return self._indexes[key]

    def convert(self, samples: np.ndarray, rate: int, params: dict) -> tuple[np.ndarray, int]:
        if not params.get("model"):
            raise BadInput("An rvc voice needs a 'model' (.pth file).")
        net = self.model(params["model"])
        hubert = self.content(params.get("content_model", "hubert_base.pt"))
        torch.set_num_threads(self.threads)
        x = to_rate(samples, rate, RATE)
        n50 = len(x) // 320
        if n50 < 2:
            return np.zeros(0, np.float32), net.cfg.sample_rate
        x = x[: n50 * 320]
        with torch.inference_mode():
            # 40 reflected samples each side: the conv stack then yields exactly one frame per 320 samples
            padded = np.pad(x, 40, mode="reflect")
            feats = hubert(torch.from_numpy(padded).to(self.device)[None])[0].float().cpu().numpy()[:n50]
        if params.get("index"):
            feats = self.index(params["index"]).blend(feats, float(params.get("index_rate", 0.75)))
        frames = 2 * len(feats)  # the synthesizer runs at 100 frames a second
        f0 = pitch(x, str(params.get("f0_method", "yin")))[:frames]
        f0 = np.pad(f0, (0, frames - len(f0)))
        f0 = np.where(f0 > 0, f0 * 2 ** (float(params.get("pitch_shift", 0)) / 12), 0).astype(np.float32)
        phone = F.interpolate(torch.from_numpy(feats).T[None], scale_factor=2.0).transpose(1, 2)
        out = net.infer(phone.to(self.device), torch.from_numpy(coarse_f0(f0))[None].to(self.device),
                        torch.from_numpy(f0)[None].to(self.device), sid=int(params.get("speaker_id", 0)))
        return out.float().cpu().numpy().astype(np.float32), net.cfg.sample_rate
