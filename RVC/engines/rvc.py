"""The rvc engine: a user's RVC model (v1 or v2, + optional retrieval index) converting base-TTS speech.

Each sentence goes through the steps of RVC's own inference pipeline: a 48 Hz high-pass, one second of
mirrored context on each side (trimmed off again after the network), F0 of the padded audio shifted by
`pitch_shift`, HuBERT content (retrieval-blended by `index_rate`, with `protect` keeping unvoiced frames'
own content), the network, the input's loudness envelope mixed in by `rms_mix_rate`, and the peak held
under 0.99. Voice params (RvcParams): model, index, index_rate, pitch_shift, f0_method, protect,
rms_mix_rate, speaker_id, content_model (default hubert_base.pt).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.errors import BadInput, EngineError
from RVC.features import RATE, to_rate
from RVC.hubert import Hubert, load_hubert
from RVC.index_file import IndexRefused, check_faiss_index, load_feature_array
from RVC.pitch import F0_METHODS, estimate_f0
from RVC.rvc_model import ModelInfo, RvcSynthesizer, load_checkpoint

CONTEXT_SECONDS = 1  # RVC's x_pad for full-precision inference
HOP = 160  # 10 ms: one synthesizer frame
MAX_LOADED_MODELS = 8


def coarse_f0(f0: np.ndarray) -> np.ndarray:
    """Hz → the 1..255 mel-spaced bins RVC's pitch embedding was trained on (1 = unvoiced)."""
    lo, hi = 1127 * np.log(1 + 50 / 700), 1127 * np.log(1 + 1100 / 700)
    mel = 1127 * np.log1p(np.maximum(f0, 0) / 700)
    bins = np.where(mel > 0, (mel - lo) * 254 / (hi - lo) + 1, 1)
    return np.clip(np.rint(bins), 1, 255).astype(np.int64)


@dataclass(frozen=True)
class RvcParams:
    """A voice's settings, checked once: at registration and before each conversion."""

    model: str
    index: str = ""
    index_rate: float = 0.75
    pitch_shift: float = 0.0  # semitones
    f0_method: str = "yin"  # harvest is what models are trained on, but costs about real time on 2 cores
    protect: float = 0.33  # 0.5 turns it off
    rms_mix_rate: float = 0.25  # 1: the network's own loudness envelope; 0: the input's
    speaker_id: int = 0
    content_model: str = "hubert_base.pt"

    @staticmethod
    def from_params(params: dict) -> "RvcParams":
        if not params.get("model"):
            raise BadInput("An rvc voice needs a 'model' (.pth file).")
        try:
            p = RvcParams(model=str(params["model"]), index=str(params.get("index") or ""),
                          index_rate=float(params.get("index_rate", 0.75)), pitch_shift=float(params.get("pitch_shift", 0)),
                          f0_method=str(params.get("f0_method", "yin")), protect=float(params.get("protect", 0.33)),
                          rms_mix_rate=float(params.get("rms_mix_rate", 0.25)), speaker_id=int(params.get("speaker_id", 0)),
                          content_model=str(params.get("content_model") or "hubert_base.pt"))
        except (TypeError, ValueError) as exc:
            raise BadInput(f"An rvc voice setting is not a number: {exc}.") from None
        for name, lo, hi in (("index_rate", 0, 1), ("protect", 0, 0.5), ("rms_mix_rate", 0, 1), ("pitch_shift", -24, 24)):
            if not lo <= getattr(p, name) <= hi:
                raise BadInput(f"{name} must be between {lo} and {hi}, not {getattr(p, name)}.")
        if p.f0_method not in F0_METHODS:
            raise BadInput(f"Unknown F0 method '{p.f0_method}'; use one of {', '.join(F0_METHODS)}.")
        if p.speaker_id < 0:
            raise BadInput("speaker_id can't be negative.")
        return p

    def to_params(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v != "" or k != "index"}


def high_pass(x: np.ndarray) -> np.ndarray:
    """RVC's 5th-order Butterworth at 48 Hz, run forwards and backwards (no phase shift): rumble out, voice kept."""
    from scipy.signal import butter, filtfilt

    b, a = butter(5, 48, btype="high", fs=RATE)
    return filtfilt(b, a, x).astype(np.float32)


def frame_rms(y: np.ndarray, rate: int) -> np.ndarray:
    """RMS over half-second frames every half second, centred (frames zero-padded at the edges)."""
    length, hop = rate // 2 * 2, rate // 2
    y = np.pad(y.astype(np.float64), length // 2)
    n = 1 + (len(y) - length) // hop
    idx = np.arange(length)[None] + hop * np.arange(n)[:, None]
    return np.sqrt(np.mean(y[idx] ** 2, axis=1))


def mix_rms(source: np.ndarray, source_rate: int, out: np.ndarray, out_rate: int, rate: float) -> np.ndarray:
    """The output's loudness envelope moved toward the source's: rate 1 keeps the output's, 0 takes the source's."""
    def envelope(y: np.ndarray, r: int) -> np.ndarray:
        e = torch.from_numpy(frame_rms(y, r))[None, None]
        return F.interpolate(e, size=len(out), mode="linear", align_corners=False)[0, 0].numpy()

    gain = envelope(source, source_rate) ** (1 - rate) * np.maximum(envelope(out, out_rate), 1e-6) ** (rate - 1)
    return (out * gain).astype(np.float32)


class FeatureIndex:
    """Retrieval over the training set's content features: faiss when installed, else exact k-NN in numpy.

    A `.index` is read by faiss's own binary reader and a `.npy` with pickles refused: neither can run code.
    Either has its sizes checked against the file first (RVC/index_file.py), so it cannot claim gigabytes."""

    def __init__(self, path: Path) -> None:
        self.faiss_index = None
        try:
            if path.suffix == ".npy":
                self.vectors = load_feature_array(path)
            else:
                import faiss  # optional: absent, a .npy of the same vectors serves

                check_faiss_index(path)
                index = faiss.read_index(str(path))
                self.vectors = index.reconstruct_n(0, index.ntotal).astype(np.float32)
                self.faiss_index = index
        except ImportError as exc:
            raise EngineError(f"Reading '{path.name}' needs faiss; install faiss-cpu or give the features as .npy.") from exc
        except IndexRefused as exc:
            raise EngineError(f"The index '{path.name}' could not be read: {exc}.") from None
        except Exception as exc:
            raise EngineError(f"The index '{path.name}' could not be read: it is damaged or not a faiss index.",
                              detail=repr(exc)) from None
        if self.vectors.ndim != 2 or self.vectors.shape[1] not in (256, 768) or len(self.vectors) == 0:
            raise EngineError(f"The index '{path.name}' does not hold RVC content features (256-d or 768-d).")
        self.dims = int(self.vectors.shape[1])
        self.norms = (self.vectors ** 2).sum(axis=1)

    def blend(self, feats: np.ndarray, rate: float, k: int = 8) -> np.ndarray:
        """Pull each frame toward its k nearest training frames (inverse-square-distance weights)."""
        if rate <= 0:
            return feats
        if feats.shape[1] != self.dims:
            raise EngineError(f"The index holds {self.dims}-d features but the model reads {feats.shape[1]}-d: "
                              "it belongs to another model version.")
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
        self.device = device
        self.threads = threads
        # least recently used first; uploads tested under a staging name must not stay loaded for good
        self._models: OrderedDict[str, tuple[RvcSynthesizer, ModelInfo]] = OrderedDict()
        self._content: dict[str, Hubert] = {}
        self._indexes: OrderedDict[str, FeatureIndex] = OrderedDict()
        self._lock = threading.Lock()

    def _path(self, name: str) -> Path:
        p = Path(name)
        p = p if p.is_absolute() or p.exists() else self.models_dir / p
        if not p.is_file():
            raise EngineError(f"The file '{p.name}' is not in {self.models_dir}; see docs/voice-cloning.md.")
        return p

    def loaded(self, name: str) -> tuple[RvcSynthesizer, ModelInfo]:
        key = str(self._path(name))
        with self._lock:
            if key not in self._models:  # a damaged file raises here and is not cached: fixing it needs no restart
                self._models[key] = load_checkpoint(Path(key), self.device)
                while len(self._models) > MAX_LOADED_MODELS:
                    self._models.popitem(last=False)
            self._models.move_to_end(key)
            return self._models[key]

    def model(self, name: str) -> RvcSynthesizer:
        return self.loaded(name)[0]

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
                while len(self._indexes) > MAX_LOADED_MODELS:
                    self._indexes.popitem(last=False)
            self._indexes.move_to_end(key)
            return self._indexes[key]

    def convert(self, samples: np.ndarray, rate: int, params: dict) -> tuple[np.ndarray, int]:
        p = RvcParams.from_params(params)
        net, info = self.loaded(p.model)
        if p.speaker_id >= info.speakers:
            raise BadInput(f"This RVC model has speaker ids 0 to {info.speakers - 1}; {p.speaker_id} is not one of them.")
        hubert = self.content(p.content_model)
        index = self.index(p.index) if p.index and p.index_rate > 0 else None
        torch.set_num_threads(self.threads)
        x = to_rate(samples, rate, RATE)
        if len(x) < 2 * HOP:
            return np.zeros(0, np.float32), info.sample_rate
        x = high_pass(x)
        pad = CONTEXT_SECONDS * RATE
        padded = np.pad(x, pad, mode="reflect")  # mirrored context: the network never starts cold on a sentence's edge
        frames = len(padded) // HOP
        f0 = estimate_f0(padded, p.f0_method, frames) * np.float32(2 ** (p.pitch_shift / 12))
        with torch.inference_mode():
            feats = hubert.rvc_features(torch.from_numpy(padded).to(self.device)[None], info.version)[0].float().cpu().numpy()
        own = feats
        if index is not None:
            feats = index.blend(feats, p.index_rate)
        # content runs at 50 frames a second, the synthesizer at 100: each content frame is used twice
        feats, own = np.repeat(feats, 2, axis=0), np.repeat(own, 2, axis=0)
        n = min(frames, len(feats))
        feats, own, f0 = feats[:n], own[:n], f0[:n]
        if p.protect < 0.5:
            # unvoiced frames (consonants, breaths) keep most of their own content: the index would blur them
            keep = np.where(f0 > 0, 1.0, p.protect).astype(np.float32)[:, None]
            feats = feats * keep + own * (1 - keep)
        out = net.infer(torch.from_numpy(np.ascontiguousarray(feats))[None].to(self.device),
                        torch.from_numpy(coarse_f0(f0))[None].to(self.device),
                        torch.from_numpy(f0)[None].to(self.device), sid=p.speaker_id)
        wave = out.float().cpu().numpy().astype(np.float32)
        trim = CONTEXT_SECONDS * info.sample_rate
        wave = wave[trim: len(wave) - trim]
        if p.rms_mix_rate != 1:
            wave = mix_rms(x, RATE, wave, info.sample_rate, p.rms_mix_rate)
        peak = float(np.abs(wave).max(initial=0)) / 0.99
        return (wave / peak if peak > 1 else wave).astype(np.float32), info.sample_rate
