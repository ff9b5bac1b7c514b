"""The photo engine: one portrait → a talking video at once, no training.

The photo is framed on the face (geneface.framing). The mouth and jaw are warped open by the answer's
loudness and the lips spread or round with the balance of its formant bands (geneface.warp); blinks every
2 to 6 s, breathing, and a sway and nod that grow while speaking keep the face from looking frozen.
"""
from __future__ import annotations

import bisect
import io
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import BadReference
from core.types import Audio
from geneface import framing
from geneface import landmarks as lm
from geneface.warp import bilinear, loudness_track, open_mouth, shift_frame, spread_track, with_margin

FPS = 25


def check_photo(data: bytes, max_side: int = framing.OUTPUT_SIDE) -> np.ndarray:
    """The photo framed on the face (head and shoulders, a square of at most `max_side`), or BadReference when
    it can't be animated: no face, two people, a face too small or too near the picture's edge to frame."""
    try:
        opened = Image.open(io.BytesIO(data))
        image = ImageOps.exif_transpose(opened).convert("RGB")  # phones store portraits sideways with a flag
    except (UnidentifiedImageError, OSError) as exc:
        raise BadReference("I could not read that picture. Please send a JPEG or PNG photo.", detail=repr(exc)) from exc
    if min(image.size) < 128:
        raise BadReference("The photo is too small; please send one at least 128 px on each side.")
    # landmarks on a copy of at most 1024 px, the face found at 640: a small face in a large photo is still found
    scale = min(1.0, 1024 / max(image.size))
    seen = np.asarray(image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)) \
        if scale < 1 else np.asarray(image)
    faces = lm.detect(seen, max_side=640)
    if not faces:
        raise BadReference("I can't find a face in that photo; please send a portrait facing the camera.")
    # a second face counts when the detector is fairly sure of it: a helmet's reflection scores near 0
    if any(f.score > 0.4 and f.width >= 0.5 * faces[0].width for f in faces[1:]):
        raise BadReference("There is more than one face in that photo; please send a portrait of one person.")
    points = lm.landmarks(seen, faces[0].box) / scale
    if framing.face_height(points) < framing.MIN_FACE_PX:
        raise BadReference("The face is too small in that photo; please send one where it is larger, or crop it closer.")
    square = framing.around_landmarks(points, image.height, image.width)
    if square.off_centre > framing.MAX_OFF_CENTRE:
        raise BadReference("The face is too near the edge of that photo to frame it; please send one with the face "
                           "nearer the middle, with some room around the head.")
    return _framed(np.asarray(image), square, max_side)


def _framed(image: np.ndarray, square: framing.Square, side: int) -> np.ndarray:
    crop = Image.fromarray(np.ascontiguousarray(square.cut(image)))
    return np.asarray(crop.resize((side, side), Image.Resampling.LANCZOS)) if crop.width != side else np.asarray(crop)


class PhotoAvatar:
    def __init__(self, path: str | Path, seed: int = 0) -> None:
        image = np.asarray(Image.open(path).convert("RGB"))
        faces = lm.detect(image, max_side=640)  # a photo kept unframed may show a small face
        if not faces:
            raise BadReference("The avatar's photo has no face in it.")
        points = lm.landmarks(image, faces[0].box)
        # a photo kept before avatars were framed (or any photo): framed here, once, so it never moves
        square = framing.around_landmarks(points, *image.shape[:2])
        if square.side < min(image.shape[:2]) - 2 or image.shape[0] != image.shape[1]:
            image = _framed(image, square, framing.OUTPUT_SIDE)
            points = (points - np.array([square.x, square.y], np.float32)) * (framing.OUTPUT_SIDE / square.side)
        self.image = image
        self.points = points.astype(np.float32)
        self.fps = FPS
        self.blinks = BlinkSchedule(seed)

    def resized(self, longer_side: int) -> "PhotoAvatar":
        """The same avatar drawn at another size (even sides), its landmarks scaled rather than found again."""
        h, w = self.image.shape[:2]
        scale = longer_side / max(h, w)
        size = (max(2, int(round(w * scale / 2)) * 2), max(2, int(round(h * scale / 2)) * 2))
        out = object.__new__(PhotoAvatar)
        out.image = np.asarray(Image.fromarray(self.image).resize(size, Image.Resampling.LANCZOS))
        out.points = self.points * np.array([size[0] / w, size[1] / h], np.float32)
        out.fps = self.fps
        out.blinks = self.blinks
        return out

    def frames(self, audio: Audio) -> Iterator[np.ndarray]:
        opening = loudness_track(audio, FPS)
        spread = spread_track(audio, FPS, opening)
        motion = Motion()
        for i, (amount, shape) in enumerate(zip(opening, spread)):
            yield self.frame(float(amount), i, float(shape), motion.step(float(amount)))

    def frame(self, amount: float, index: int, spread: float = 0.0, liveliness: float = 0.0) -> np.ndarray:
        """Frame number `index` of the face's motion with the mouth `amount` (0..1) open and `spread` (-1..1)
        wide; `liveliness` (0..1, from `Motion`) is how much the head moves with the speech."""
        t = index / FPS
        frame = open_mouth(self.image, self.points, amount * MOUTH_RANGE, spread=spread)
        closure = self.blinks.closure(index)
        if closure > 0:
            frame = close_eyes(frame, self.points, closure)
        eye = lm.eye_distance(self.points)
        # breathing (about 15 a minute) always; a sway and a nod that grow while speaking
        breath = np.sin(2 * np.pi * 0.25 * t)
        dx = eye * (0.015 * np.sin(0.5 * t) + 0.03 * liveliness * np.sin(1.3 * t + 0.7))
        dy = eye * (0.012 * breath + 0.04 * liveliness * (0.6 + 0.4 * np.sin(2.1 * t)))
        angle = 0.4 * np.sin(0.35 * t) + 1.2 * liveliness * np.sin(0.9 * t + 1.0)
        # the moves stay within a few pixels: a border of repeated edge pixels that wide covers them
        margin = int(np.ceil(0.1 * eye)) + 2
        return shift_frame(with_margin(frame, margin), dx, dy, angle, center=tuple(self.points[8]), margin=margin)

    def render(self, audio: Audio, text: str = "", subtitles: bool = False) -> bytes:
        from adapters.video import encode_mp4, timed_cues

        cues = timed_cues(text, audio.seconds) if subtitles and text else ()
        return encode_mp4(self.frames(audio), FPS, audio, cues=cues)


# the warp opens the mouth to MOUTH_RANGE of its widest at the speech's loud peaks: a talking jaw, not a yawn
MOUTH_RANGE = 0.5


class Motion:
    """How lively the head is: follows the mouth's opening over about a second, so a nod grows and settles
    with the speech rather than with each syllable, and dies away in a pause."""

    def __init__(self) -> None:
        self.level = 0.0

    def step(self, opening: float) -> float:
        rate = 0.12 if opening > self.level else 0.04
        self.level += rate * (min(1.0, 1.5 * opening) - self.level)
        return self.level


class BlinkSchedule:
    """Blinks every 2 to 6 s (random, but the same for the same seed), each about 0.2 s: closing, shut, opening."""

    SHAPE = (0.45, 0.9, 1.0, 0.7, 0.3)

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.starts: list[int] = []
        self._next = int(self.rng.uniform(0.8, 2.5) * FPS)
        self._lock = threading.Lock()  # one avatar's schedule is shared by the streams drawing it

    def closure(self, index: int) -> float:
        """How closed the eyes are in frame `index`, 0..1."""
        with self._lock:
            while self._next <= index + len(self.SHAPE):
                self.starts.append(self._next)
                self._next += round(self.rng.uniform(2.0, 6.0) * FPS)
        i = bisect.bisect_right(self.starts, index) - 1
        if i < 0 or index - self.starts[i] >= len(self.SHAPE):
            return 0.0
        return self.SHAPE[index - self.starts[i]]


def close_eyes(frame: np.ndarray, pts: np.ndarray, closure: float) -> np.ndarray:
    """The upper lids drawn down over the eyes by `closure` (1: shut): the skin above each eye slides down,
    its lash line with it, as a lid does."""
    out = frame
    for eye in (pts[lm.LEFT_EYE], pts[lm.RIGHT_EYE]):
        (ex0, ey0), (ex1, ey1) = eye.min(0), eye.max(0)
        eh = max(ey1 - ey0, 2.0)
        ew = ex1 - ex0
        x0, x1 = int(max(0, ex0 - 0.3 * ew)), int(min(frame.shape[1], ex1 + 0.3 * ew + 1))
        y0, y1 = int(max(0, ey0 - 1.1 * eh)), int(min(frame.shape[0], ey1 + 0.6 * eh + 1))
        if x1 - x0 < 3 or y1 - y0 < 3:
            continue
        gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        cx = (ex0 + ex1) / 2
        # how far the lid comes down here: most in the middle of the eye, none at the corners' far side
        across = 1 - np.clip(np.abs(gx - cx) / (0.5 * ew + 0.3 * ew), 0, 1) ** 2
        travel = closure * (eh + 1.0) * across
        # above the eye the skin stretches to follow the lid; below the lid's new edge nothing moves
        ramp = np.clip((gy - y0) / max(ey0 + 0.3 * eh - y0, 1.0), 0, 1)
        lid_edge = ey0 + travel
        shift = np.where(gy <= lid_edge, travel * ramp, 0.0)
        src = gy - shift
        if out is frame:
            out = frame.copy()
        out[y0:y1, x0:x1] = bilinear(frame, src, gx).clip(0, 255).astype(np.uint8)
    return out
