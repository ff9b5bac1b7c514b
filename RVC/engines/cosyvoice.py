"""Optional zero-shot engine: CosyVoice, when its package and weights are supplied (experimental, as in the seed).

Install the `cosyvoice` package and put a CosyVoice model folder in RVC/models/cosyvoice/. Voice params:
reference (a clip of the speaker), reference_text (its transcript), model_dir (default RVC/models/cosyvoice).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from core.errors import EngineError


def available() -> bool:
    return importlib.util.find_spec("cosyvoice") is not None


class CosyVoiceEngine:
    name = "cosyvoice"

    def __init__(self, models_dir: Path, device: str = "cpu") -> None:
        if not available():
            raise EngineError("The cosyvoice engine is not installed on this server (see docs/voice-cloning.md).")
        self.models_dir = Path(models_dir)
        self._model = None

    def _load(self, model_dir: Path):
        if self._model is None:
            from cosyvoice.cli.cosyvoice import CosyVoice

            if not model_dir.is_dir():
                raise EngineError(f"No CosyVoice weights in {model_dir}.")
            self._model = CosyVoice(str(model_dir))
        return self._model

    def convert(self, samples: np.ndarray, rate: int, params: dict) -> tuple[np.ndarray, int]:
        """Voice conversion from the reference clip (CosyVoice's inference_vc)."""
        import torch

        from RVC.features import RATE, to_rate

        model = self._load(Path(params.get("model_dir") or self.models_dir / "cosyvoice"))
        ref = params.get("reference")
        if not ref:
            raise EngineError("A cosyvoice voice needs a 'reference' clip.")
        from adapters.media import decode_audio

        prompt = decode_audio(Path(ref).read_bytes()).samples
        source = torch.from_numpy(to_rate(samples, rate, RATE))[None]
        pieces = [out["tts_speech"].numpy().reshape(-1) for out in model.inference_vc(source, torch.from_numpy(prompt)[None])]
        return np.concatenate(pieces).astype(np.float32), int(model.sample_rate)
