"""Rendering a trained lite avatar: idle frames of the person, the mouth redrawn from the answer's sound.

Each idle frame's own crop (mouth hidden) is the network's reference, so the redrawn lower face keeps that frame's pose.
The frames are cut to one fixed square around the face (geneface.framing), the same for every answer.
"""
from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.nn import functional as F

from core.types import Audio
from geneface import framing
from geneface.lite.artifact import Loaded
from geneface.lite.data import KEEP_TOP, cut, hide_mouth, mel, mel_windows, paste


def pingpong(n: int, count: int) -> list[int]:
    """Frame indices that walk the idle loop forwards, then backwards, so the head never jumps."""
    return [loop_index(n, k) for k in range(count)]


def loop_index(n: int, k: int) -> int:
    """The idle frame shown at step `k` of that walk through `n` frames."""
    if n <= 1:
        return 0
    period = 2 * (n - 1)
    m = k % period
    return m if m < n else period - m


class LiteAvatar:
    def __init__(self, folder: str | Path, gpu: int | None = None, batch: int = 16) -> None:
        device = torch.device(f"cuda:{gpu}") if gpu is not None and torch.cuda.is_available() else torch.device("cpu")
        self.loaded = Loaded(Path(folder), device)
        self.batch = batch
        # the idle loop decoded once, on the device that renders: a few seconds of frames
        self.idle = torch.from_numpy(np.stack([self.loaded.idle_frame(i) for i in range(len(self.loaded))])).to(device)
        self.square = face_square(self.loaded.boxes, *self.idle.shape[1:3])
        self.frame_size = (self.square.side, self.square.side)  # (width, height) of the frames it draws

    @property
    def fps(self) -> int:
        return self.loaded.fps

    def frames(self, audio: Audio, mel_frames: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """The talking frames for `audio`; `mel_frames` when its mel was computed already."""
        lo = self.loaded
        count = max(1, int(np.ceil(audio.seconds * lo.fps)))
        windows = mel_windows(mel(audio) if mel_frames is None else mel_frames, count, lo.fps)
        order = pingpong(len(lo), count)
        for start in range(0, count, self.batch):
            idx = order[start:start + self.batch]
            yield from self.draw(idx, windows[start:start + len(idx)]).cpu().numpy()

    def draw(self, idle_index: list[int], windows: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Idle-loop frames `idle_index` with their mouths redrawn from mel `windows` (B, 80, WINDOW), framed on the
        face: (B, H, W, 3) uint8 on the rendering device, `size` (width, height), by default `frame_size`."""
        size = size or self.frame_size
        lo = self.loaded
        frames = self.idle[torch.as_tensor(idle_index, device=self.idle.device)]
        boxes = lo.boxes[idle_index]
        w = torch.from_numpy(np.ascontiguousarray(windows, np.float32)).to(lo.device)
        with torch.inference_mode():
            y = lo.model(hide_mouth(cut(frames, boxes, lo.config.size)), w)
            out = paste(frames, y.clamp(0, 1), boxes)
            q = self.square
            out = out[:, q.y:q.y + q.side, q.x:q.x + q.side]
            if (size[1], size[0]) != tuple(out.shape[1:3]):
                shrink = size[0] < out.shape[2]  # averaging over the pixels dropped only matters when shrinking
                x = F.interpolate(out.permute(0, 3, 1, 2).float(), size=(size[1], size[0]), mode="bilinear",
                                  align_corners=False, antialias=shrink)
                out = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        return out

    def render(self, audio: Audio, text: str = "", subtitles: bool = False) -> bytes:
        from adapters.video import encode_mp4, timed_cues

        cues = timed_cues(text, audio.seconds) if subtitles and text else ()
        # frames are made in a second thread while this one encodes: torch and x264 both release the GIL
        return encode_mp4(prefetch(self.frames(audio)), self.fps, audio, cues=cues)


# the lite crop box over a face (geneface.lite.data.crop_boxes): its side is 1.25 jaw widths and the nose tip
# sits KEEP_TOP down it; brows to chin is about 1.05 jaw widths, its middle level with the nose tip (dlib's
# landmarks on the astronaut portrait)
FACE_PER_BOX = 1.05 / 1.25


def face_square(boxes: np.ndarray, height: int, width: int) -> framing.Square:
    """One square framing the face over the whole idle loop (the median of its crop boxes): it never moves."""
    left, top, side = np.median(boxes[:, 0]), np.median(boxes[:, 1]), np.median(boxes[:, 2])
    return framing.around(float(left + side / 2), float(top + KEEP_TOP * side), float(FACE_PER_BOX * side), height, width)


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
