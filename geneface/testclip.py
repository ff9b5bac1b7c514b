"""Test talking videos with a known mouth signal: a real face photo whose mouth follows a real speech clip's loudness.

There is no real talking video to test with, so this makes one: scikit-image's astronaut portrait, its
mouth opened frame by frame by the loudness of the speech (geneface.warp), with a small head sway and blinks. The
driving signal is returned too: it is what a lip-sync engine's output must follow.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.types import Audio
from geneface import landmarks as lm
from geneface.photo import BlinkSchedule, close_eyes
from geneface.warp import loudness_track, open_mouth, shift_frame

FPS = 25


@dataclass(frozen=True)
class TalkingClip:
    frames: list[np.ndarray]
    audio: Audio
    opening: np.ndarray  # the driving signal, 0..1 per frame
    fps: int = FPS

    def mp4(self) -> bytes:
        from adapters.video import encode_mp4

        return encode_mp4(self.frames, self.fps, self.audio, crf=18)


@lru_cache(maxsize=4)
def portrait(size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The astronaut's face framed like a selfie video (head and shoulders), and its landmarks."""
    from PIL import Image
    from skimage import data

    image = data.astronaut()
    face = lm.detect(image)[0]
    cx, cy = (face.box[0] + face.box[2]) // 2, (face.box[1] + face.box[3]) // 2
    half = int(face.width * 1.45)
    # keep the crop inside the picture: the face sits high in it
    x0 = int(np.clip(cx - half, 0, image.shape[1] - 2 * half))
    y0 = int(np.clip(cy - int(half * 0.9), 0, image.shape[0] - 2 * half))
    crop = image[y0:y0 + 2 * half, x0:x0 + 2 * half]
    framed = np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.LANCZOS))
    faces = lm.detect(framed)
    return framed, lm.landmarks(framed, faces[0].box)


def make_clip(audio: Audio, *, size: int = 256, seed: int = 0, sway_px: float = 3.0) -> TalkingClip:
    base, pts = portrait(size)
    opening = loudness_track(audio, FPS)
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, 3)
    blinks = BlinkSchedule(seed)
    frames = []
    for i, amount in enumerate(opening):
        t = i / FPS
        # slow, incommensurate sways: the head never repeats exactly, as in a real video
        dx = sway_px * np.sin(0.9 * t + phase[0])
        dy = 0.6 * sway_px * np.sin(1.3 * t + phase[1])
        angle = 1.2 * np.sin(0.7 * t + phase[2])
        face = open_mouth(base, pts, float(amount))
        closure = blinks.closure(i)
        if closure > 0:  # a person blinks: the lite engine's idle loop takes its blinks from the video
            face = close_eyes(face, pts, closure)
        frames.append(shift_frame(face, dx, dy, angle))
    return TalkingClip(frames, audio, opening)


def speech(paths, sample_rate: int = 16_000, seconds: float | None = None) -> Audio:
    """Real speech clips joined end to end (with short pauses), optionally cut to `seconds`."""
    from adapters.media import decode_audio

    parts = []
    for p in paths:
        parts.append(decode_audio(Path(p).read_bytes(), sample_rate).samples)
        parts.append(np.zeros(int(0.25 * sample_rate), np.float32))
        if seconds and sum(x.size for x in parts) >= seconds * sample_rate:
            break
    samples = np.concatenate(parts)
    if seconds:
        samples = samples[: int(seconds * sample_rate)]
    return Audio(samples, sample_rate)
