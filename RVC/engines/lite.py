"""The lite engine at inference: Whisper content + the source's pitch moved into the speaker's range → the speaker's voice."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from core.errors import EngineError
from RVC.features import RATE, WhisperContent, convert_f0, f0_yin, log_f0_stats, to_rate
from RVC.lite_model import LiteConfig, LiteNet
from RVC.lite_runtime import build_generator
from RVC.lite_train import ARTIFACT_VERSION

PAD_FRAMES = 12  # 0.24 s of silence around each sentence while converting


class LiteVoice:
    """One trained voice, loaded from its artifact."""

    def __init__(self, path: Path, runtime: str = "auto", threads: int = 2) -> None:
        try:
            art = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise EngineError(f"The voice model file '{Path(path).name}' is damaged or not a lite voice.", detail=repr(exc)) from exc
        if not isinstance(art, dict) or art.get("format") != "doppel-lite":
            raise EngineError(f"'{Path(path).name}' is not a lite voice model.")
        if int(art.get("version", 0)) > ARTIFACT_VERSION:
            raise EngineError(f"'{Path(path).name}' was made by a newer doppel (format {art['version']}).")
        try:
            self.cfg = LiteConfig.from_dict(art["config"])
            self.net = LiteNet(self.cfg).eval()
            self.net.load_state_dict({k: v.float() for k, v in art["weights"].items()})
        except Exception as exc:
            raise EngineError(f"The voice model file '{Path(path).name}' is damaged.", detail=repr(exc)) from exc
        self.pca_mean = art["pca_mean"].numpy()
        self.pca_basis = art["pca_basis"].numpy()
        self.f0_stats = tuple(art["f0_stats"])
        self.generate = build_generator(self.net, runtime, threads)
        self.lock = threading.Lock()


class LiteEngine:
    """Loads voices once and keeps them; one conversion at a time per voice (two cores gain nothing from more).

    runtime: how the generator runs (RVC/lite_runtime.py): "auto" exports it to onnxruntime when a voice is
    loaded, which pays off from the second sentence on; "torch" for a process that converts once and exits.
    """

    name = "lite"

    def __init__(self, content: WhisperContent, threads: int = 2, runtime: str = "auto") -> None:
        self.content = content
        self.threads = threads
        self.runtime = runtime
        self._voices: dict[str, LiteVoice] = {}
        self._lock = threading.Lock()

    def voice(self, path: str | Path) -> LiteVoice:
        key = str(Path(path).resolve())
        with self._lock:
            if key not in self._voices:
                if not Path(path).is_file():
                    raise EngineError(f"The voice model '{Path(path).name}' is missing; train the voice again.")
                self._voices[key] = LiteVoice(Path(path), self.runtime, self.threads)
            return self._voices[key]

    def runtimes(self) -> list[str]:
        """How the loaded voices' generators run: "onnx", or "torch" (chosen, or fallen back to; the log says why)."""
        with self._lock:
            return sorted({v.generate.runtime for v in self._voices.values()})

    def forget(self, path: str | Path) -> None:
        with self._lock:
            self._voices.pop(str(Path(path).resolve()), None)

    def convert(self, samples: np.ndarray, rate: int, params: dict) -> tuple[np.ndarray, int]:
        if not params.get("artifact"):
            raise EngineError("This voice has no trained model yet; train it first.")
        voice = self.voice(params["artifact"])
        x = to_rate(samples, rate, RATE)
        n50 = len(x) // 320
        if n50 < 2:
            return x, RATE
        # The base TTS starts speaking at its first sample, while the recordings trained on open with a pause:
        # without one, the first consonant comes out smeared ("Please" heard as "Peace").
        pad = PAD_FRAMES * 320
        x = np.concatenate([np.zeros(pad, np.float32), x[: n50 * 320], np.zeros(pad, np.float32)])
        n50 += 2 * PAD_FRAMES
        content = voice.pca_basis.T @ (self.content.encode(x) - voice.pca_mean).T  # [K, T50]
        f0 = f0_yin(x)[: 2 * n50]
        f0 = np.pad(f0, (0, 2 * n50 - len(f0)))
        f0 = convert_f0(f0, log_f0_stats(f0), voice.f0_stats, float(params.get("pitch_shift", 0.0)))
        with voice.lock:
            out = voice.generate(content.T, f0)
        return out[pad: len(out) - pad].astype(np.float32), RATE
