"""The photo engine: one portrait → a talking video at once, no training.

The mouth and jaw are warped open by the answer's loudness (geneface.warp); a slow sway and an
occasional blink keep the face from looking frozen.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.errors import BadReference
from core.types import Audio
from geneface import landmarks as lm
from geneface.warp import loudness_track, open_mouth, shift_frame

FPS = 25


def check_photo(data: bytes, max_side: int = 512) -> np.ndarray:
    """The photo as RGB (scaled to `max_side`, even sides), or BadReference when it can't be animated."""
    try:
        image = Image.open(io.BytesIO(data)).convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise BadReference("I could not read that picture. Please send a JPEG or PNG photo.", detail=repr(exc)) from exc
    scale = min(1.0, max_side / max(image.size))
    w, h = int(image.width * scale) // 2 * 2, int(image.height * scale) // 2 * 2
    if min(w, h) < 128:
        raise BadReference("The photo is too small; please send one at least 128 px on each side.")
    rgb = np.asarray(image.resize((w, h), Image.Resampling.LANCZOS))
    faces = lm.detect(rgb)
    if not faces:
        raise BadReference("I can't find a face in that photo; please send a portrait facing the camera.")
    if len(faces) > 1 and faces[1].width >= 0.5 * faces[0].width:
        raise BadReference("There is more than one face in that photo; please send a portrait of one person.")
    if faces[0].width < 0.15 * min(w, h):
        raise BadReference("The face is too small in that photo; please crop it closer.")
    return rgb


class PhotoAvatar:
    def __init__(self, path: str | Path) -> None:
        self.image = np.asarray(Image.open(path).convert("RGB"))
        faces = lm.detect(self.image)
        if not faces:
            raise BadReference("The avatar's photo has no face in it.")
        self.points = lm.landmarks(self.image, faces[0].box)
        self.fps = FPS

    def resized(self, longer_side: int) -> "PhotoAvatar":
        """The same avatar drawn at another size (even sides), its landmarks scaled rather than found again."""
        h, w = self.image.shape[:2]
        scale = longer_side / max(h, w)
        size = (max(2, int(round(w * scale / 2)) * 2), max(2, int(round(h * scale / 2)) * 2))
        out = object.__new__(PhotoAvatar)
        out.image = np.asarray(Image.fromarray(self.image).resize(size, Image.Resampling.LANCZOS))
        out.points = self.points * np.array([size[0] / w, size[1] / h], np.float32)
        out.fps = self.fps
        return out

    def frames(self, audio: Audio) -> Iterator[np.ndarray]:
        for i, amount in enumerate(loudness_track(audio, FPS)):
            yield self.frame(float(amount), i)

    def frame(self, amount: float, index: int) -> np.ndarray:
        """Frame number `index` of the face's motion (sway, blinks) with the mouth `amount` (0..1) open."""
        t = index / FPS
        frame = open_mouth(self.image, self.points, amount * 0.8)
        if _blinking(t):
            frame = _blink(frame, self.points)
        eye = lm.eye_distance(self.points)
        # a sway of about 2 % of the eye distance, slower than speech
        return shift_frame(frame, 0.03 * eye * np.sin(0.8 * t), 0.02 * eye * np.sin(1.1 * t + 1.0), 0.8 * np.sin(0.6 * t))

    def render(self, audio: Audio, text: str = "", subtitles: bool = False) -> bytes:
        from adapters.video import encode_mp4, timed_cues

        cues = timed_cues(text, audio.seconds) if subtitles and text else ()
        return encode_mp4(self.frames(audio), FPS, audio, cues=cues)


def _blinking(t: float) -> bool:
    # about every 3.7 s, for 0.12 s: roughly how often people blink while talking
    return (t % 3.7) < 0.12 and t > 1.0


def _blink(frame: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Close both eyes by filling each eye's outline with the skin just above it."""
    out = frame.copy()
    for eye in (pts[lm.LEFT_EYE], pts[lm.RIGHT_EYE]):
        x0, y0 = np.floor(eye.min(0)).astype(int) - 1
        x1, y1 = np.ceil(eye.max(0)).astype(int) + 2
        h = y1 - y0
        if h <= 0 or y0 - h < 0:
            continue
        lid = frame[y0 - h:y0, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = (0.8 * lid + 0.2 * frame[y0:y1, x0:x1]).astype(np.uint8)
    return out
