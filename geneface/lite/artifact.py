"""A trained lite avatar on disk: the network and an idle loop of the person's own frames.

The idle loop is a few seconds of the upload kept as JPEG: the head motion and blinks of every rendered
answer come from it, played forwards and backwards so it never jumps.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from geneface.lite.data import Prepared
from geneface.lite.model import LipSync, LiteConfig

MODEL_FILE = "lite.pt"
IDLE_FILE = "idle.npz"


def save(folder: Path, model: LipSync, idle: list[np.ndarray], prepared: Prepared, fps: int = 25) -> None:
    """Write the network and the idle loop (the footage's first frames, with their crop boxes)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"config": model.config.to_dict(), "model": state}, folder / MODEL_FILE)
    blobs = []
    for f in idle:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=92)
        blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
    offsets = np.cumsum([0] + [b.size for b in blobs])
    np.savez(folder / IDLE_FILE, jpeg=np.concatenate(blobs), offsets=offsets, boxes=prepared.boxes[:len(idle)], fps=fps)


class Loaded:
    def __init__(self, folder: Path, device: torch.device) -> None:
        blob = torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True)
        self.config = LiteConfig(**blob["config"])
        self.model = LipSync(self.config)
        self.model.load_state_dict(blob["model"])
        self.model.eval().to(device)
        z = np.load(folder / IDLE_FILE, allow_pickle=False)
        self._jpeg, self._offsets = z["jpeg"], z["offsets"]
        self.boxes = z["boxes"]
        self.fps = int(z["fps"])
        self.device = device

    def __len__(self) -> int:
        return len(self.boxes)

    def idle_frame(self, i: int) -> np.ndarray:
        data = self._jpeg[self._offsets[i]:self._offsets[i + 1]].tobytes()
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
