"""Face detection, tracking and the 68 dlib landmarks (models from the `face-recognition-models` package).

The mouth opening measure here is the one everything else agrees on: the intake reports it, the test
data generator is checked with it, and the lip-sync tests compare rendered frames by it.
"""
from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

# dlib index ranges (0-based) of the 68-point model
JAW = slice(0, 17)
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
MOUTH = slice(48, 68)
INNER_UPPER = (61, 62, 63)
INNER_LOWER = (67, 66, 65)

_LOCK = threading.Lock()  # dlib's objects are not documented as thread-safe


def _models_dir() -> Path:
    # found without importing the package: its __init__ needs pkg_resources, gone from current setuptools
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the face-recognition-models package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@lru_cache(maxsize=1)
def _dlib():
    import dlib

    return dlib, dlib.get_frontal_face_detector(), dlib.shape_predictor(str(_models_dir() / "shape_predictor_68_face_landmarks.dat"))


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # left, top, right, bottom
    score: float

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]


def detect(image: np.ndarray, max_side: int = 320) -> list[Face]:
    """Faces in an RGB image, largest first; detection runs on a copy scaled to `max_side` for speed."""
    _, detector, _ = _dlib()
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    small = image if scale == 1.0 else _resize(image, scale)
    with _LOCK:
        rects, scores, _ = detector.run(np.ascontiguousarray(small), 1, 0.0)
    faces = [Face((int(r.left() / scale), int(r.top() / scale), int(r.right() / scale), int(r.bottom() / scale)), float(s))
             for r, s in zip(rects, scores)]
    return sorted(faces, key=lambda f: -f.width)


def landmarks(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """68 (x, y) points as float32 for the face in `box`."""
    dlib, _, predictor = _dlib()
    with _LOCK:
        shape = predictor(np.ascontiguousarray(image), dlib.rectangle(*[int(v) for v in box]))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def box_of(points: np.ndarray, grow: float = 0.1) -> tuple[int, int, int, int]:
    """A detector-like box around landmarks, to follow a face without detecting it again."""
    x0, y0 = points.min(0)
    x1, y1 = points.max(0)
    # dlib's boxes sit a little above the brows and end near the chin
    m = (x1 - x0) * grow
    return int(x0 - m), int(y0 - (y1 - y0) * 0.15), int(x1 + m), int(y1 + m * 0.5)


def track(frames: Iterable[np.ndarray], redetect_every: int = 25) -> list[np.ndarray | None]:
    """Landmarks per frame: detect now and then, follow the previous frame's points in between."""
    out: list[np.ndarray | None] = []
    prev: np.ndarray | None = None
    for i, frame in enumerate(frames):
        box = None
        if prev is None or i % redetect_every == 0:
            faces = detect(frame)
            if faces:
                box = faces[0].box
        if box is None and prev is not None:
            box = box_of(prev)
        if box is None:
            out.append(None)
            prev = None
            continue
        pts = landmarks(frame, box)
        if not _plausible(pts, frame.shape):
            out.append(None)
            prev = None
            continue
        out.append(pts)
        prev = pts
    return out


def _plausible(pts: np.ndarray, shape: Sequence[int]) -> bool:
    h, w = shape[:2]
    inside = (pts[:, 0] > -0.1 * w).all() and (pts[:, 0] < 1.1 * w).all() and (pts[:, 1] > -0.1 * h).all() and (pts[:, 1] < 1.1 * h).all()
    return bool(inside) and eye_distance(pts) > 6


def eye_distance(pts: np.ndarray) -> float:
    return float(np.linalg.norm(pts[LEFT_EYE].mean(0) - pts[RIGHT_EYE].mean(0)))


def mouth_opening(pts: np.ndarray) -> float:
    """Inner-lip gap over the distance between the eyes: independent of the face's size in the frame."""
    gap = np.mean([np.linalg.norm(pts[u] - pts[l]) for u, l in zip(INNER_UPPER, INNER_LOWER)])
    return float(gap / max(eye_distance(pts), 1e-6))


def opening_series(frames: Iterable[np.ndarray]) -> np.ndarray:
    """Mouth opening per frame (NaN where no face was found)."""
    return np.array([mouth_opening(p) if p is not None else np.nan for p in track(frames)], dtype=np.float64)


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.Resampling.BILINEAR))
