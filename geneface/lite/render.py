"""Rendering a trained lite avatar: idle frames of the person, the mouth redrawn from the answer's sound.

Each idle frame's own crop (mouth hidden) is the network's reference, so the redrawn lower face keeps that frame's pose.
"""
from __future__ import annotations

import queue
import threading
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
        # the idle loop decoded once, on the device that renders: a few seconds of frames
        self.idle = torch.from_numpy(np.stack([self.loaded.idle_frame(i) for i in range(len(self.loaded))])).to(device)

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
            frames = self.idle[torch.as_tensor(idx, device=self.idle.device)]
            boxes = lo.boxes[idx]
            w = torch.from_numpy(windows[start:start + len(idx)]).to(lo.device)
            with torch.inference_mode():
                y = lo.model(hide_mouth(cut(frames, boxes, size)), w)
                out = paste(frames, y.clamp(0, 1), boxes).cpu().numpy()
            yield from out

    def render(self, audio: Audio, text: str = "", subtitles: bool = False) -> bytes:
        from adapters.video import encode_mp4, timed_cues

        cues = timed_cues(text, audio.seconds) if subtitles and text else ()
        # frames are made in a second thread while this one encodes: torch and x264 both release the GIL
        return encode_mp4(prefetch(self.frames(audio)), self.fps, audio, cues=cues)


def prefetch(items: Iterator, depth: int = 48) -> Iterator:
    """Run a generator ahead in a thread, `depth` items at most."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def pump() -> None:
        try:
            for item in items:
                q.put(item)
        except BaseException as exc:  # handed over and raised on the consumer's side
            q.put(exc)
        finally:
            q.put(done)

    threading.Thread(target=pump, daemon=True).start()
    while (item := q.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item
