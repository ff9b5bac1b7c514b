"""Rendering a trained lite avatar: idle frames of the person, the mouth redrawn from the answer's sound.

Each idle frame's own crop (mouth hidden) is the network's reference, so the redrawn lower face keeps that frame's pose.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from core.types import Audio
from geneface.lite.artifact import Loaded
from geneface.lite.data import cut, hide_mouth, mel, mel_windows, paste


def pingpong(n: int, count: int) -> list[int]:
    """Frame indices that walk the idle loop forwards, then backwards, so the head never jumps."""
    if n <= 1:
        return [0] * count
    period = 2 * (n - 1)
    return [m if m < n else period - m for m in (k % period for k in range(count))]


class LiteAvatar:
    def __init__(self, folder: str | Path, gpu: int | None = None, batch: int = 16) -> None:
        device = torch.device(f"cuda:{gpu}") if gpu is not None and torch.cuda.is_available() else torch.device("cpu")
        self.loaded = Loaded(Path(folder), device)
        self.batch = batch

    @property
    def fps(self) -> int:
        return self.loaded.fps

    def frames(self, audio: Audio, mel_frames: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """The talking frames for `audio`; `mel_frames` when its mel was computed already."""
        lo = self.loaded
        count = max(1, int(np.ceil(audio.seconds * lo.fps)))
        windows = mel_windows(mel(audio) if mel_frames is None else mel_frames, count, lo.fps)
        order = pingpong(len(lo), count)
        size = lo.config.size
        for start in range(0, count, self.batch):
            idx = order[start:start + self.batch]
            idle = [lo.idle_frame(i) for i in idx]
            crops = np.stack([cut(f, lo.boxes[i], size) for f, i in zip(idle, idx)])
            x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().to(lo.device) / 255
            w = torch.from_numpy(windows[start:start + len(idx)]).to(lo.device)
            with torch.inference_mode():
                y = lo.model(hide_mouth(x), w)
            out = (y.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            for frame, crop, i in zip(idle, out, idx):
                yield paste(frame, crop, lo.boxes[i])

    def render(self, audio: Audio, text: str = "", subtitles: bool = False) -> bytes:
        from adapters.video import encode_mp4, timed_cues

        cues = timed_cues(text, audio.seconds) if subtitles and text else ()
        return encode_mp4(self.frames(audio), self.fps, audio, cues=cues)
