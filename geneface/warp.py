"""Opening a face's mouth by warping one image: the photo engine's whole trick, and how the test clips are made.

The lower lip, chin and jaw are pulled down by a smooth displacement field; the gap that opens between
the lips is painted as the inside of a mouth (mouth_inside): upper teeth with their gaps and the shade
where they recede, a tongue, lower teeth when it is wide open, all lit and tinted from the person's own
lips and face so a dim photo does not get glowing teeth. The amount per frame comes from the speech's loudness.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

from core.types import Audio
from geneface.landmarks import INNER_LOWER, INNER_UPPER

TEETH = np.array([236, 230, 216], np.float32)
# where one tooth meets the next, across the upper arch from the middle (in half mouth widths)
TOOTH_GAPS = (0.0, 0.2, 0.37, 0.52, 0.65, 0.77)


def loudness_track(audio: Audio, fps: float, floor_db: float = -42.0, smooth: float = 0.5) -> np.ndarray:
    """How open the mouth is, 0..1, per video frame: frame loudness in dB above a floor, relative to the clip's peak."""
    n = max(1, int(round(audio.seconds * fps)))
    hop = audio.sample_rate / fps
    x = audio.samples.astype(np.float64)
    rms = np.array([np.sqrt(np.mean(x[int(i * hop): int((i + 1) * hop)] ** 2) + 1e-12) for i in range(n)])
    db = 20 * np.log10(rms + 1e-9)
    level = _level(db, np.percentile(db, 95) if n > 4 else db.max(), floor_db)
    out = np.empty_like(level)
    prev = 0.0
    for i, v in enumerate(level):
        prev = out[i] = _follow(prev, v, smooth)
    return out.astype(np.float32)


def _level(db, top: float, floor_db: float):
    """Loudness in dB → 0..1 between a floor 30 dB (at most) under `top` and `top`."""
    lo = max(floor_db, top - 30.0)
    return np.clip((db - lo) / max(top - lo, 1e-6), 0.0, 1.0)


def _follow(prev: float, level: float, smooth: float) -> float:
    # lips open fast and close a little slower, as they do
    return level if level > prev else prev * smooth + level * (1 - smooth)


class LoudnessFollower:
    """`loudness_track` for speech that arrives a frame at a time: no frame looks ahead of its own samples.

    The peak that the clip's 95th percentile gives at once is learnt here from the frames heard so far,
    starting from speech's usual level (`prior_db`) and trusting what was heard more as it grows.
    """

    def __init__(self, floor_db: float = -42.0, smooth: float = 0.5, prior_db: float = -13.0,
                 prior_frames: int = 50, memory: int = 750) -> None:
        self.floor_db, self.smooth, self.prior_db, self.prior_frames, self.memory = floor_db, smooth, prior_db, prior_frames, memory
        self.heard: list[float] = []
        self.state = 0.0

    def top(self) -> float:
        voiced = [db for db in self.heard[-self.memory:] if db > self.floor_db]  # pauses say nothing of the voice's level
        n = len(voiced)
        if n == 0:
            return self.prior_db
        p95 = float(np.percentile(voiced, 95))
        return (self.prior_frames * self.prior_db + n * p95) / (self.prior_frames + n)

    def opening(self, samples: np.ndarray, prev: float) -> tuple[float, float]:
        """(how open, 0..1, the frame's loudness in dB) for one frame's samples after a frame `prev` open; learns nothing."""
        x = samples.astype(np.float64)
        db = 20 * np.log10(np.sqrt(np.mean(x ** 2) + 1e-12) + 1e-9) if x.size else -180.0
        return _follow(prev, float(_level(db, self.top(), self.floor_db)), self.smooth), db

    def commit(self, opening: float, db: float) -> None:
        """Learn from a frame whose sound was complete; `opening` is where the next frame starts from."""
        self.state = opening
        self.heard.append(db)
        if len(self.heard) > 2 * self.memory:
            del self.heard[:-self.memory]

    def restart(self) -> None:
        """A new utterance: the mouth starts closed; the level learnt so far stays (it is the voice's)."""
        self.state = 0.0


def open_mouth(image: np.ndarray, pts: np.ndarray, amount: float, max_open: float = 0.55) -> np.ndarray:
    """`image` with the mouth opened by `amount` (0 closed .. 1 wide: `max_open` × the mouth's width)."""
    if amount <= 1e-3:
        return image
    h, w = image.shape[:2]
    left, right = pts[48], pts[54]
    mouth_w = float(np.linalg.norm(right - left))
    gap = amount * max_open * mouth_w
    chin_y = float(pts[8, 1])
    # the line where the lips meet: middle of the inner lips, as a function of x
    xs = np.array([pts[60, 0], *[(pts[u, 0] + pts[l, 0]) / 2 for u, l in zip(INNER_UPPER, INNER_LOWER)], pts[64, 0]])
    ys = np.array([pts[60, 1], *[(pts[u, 1] + pts[l, 1]) / 2 for u, l in zip(INNER_UPPER, INNER_LOWER)], pts[64, 1]])
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    lips_y = float(ys.mean())
    fall = max(chin_y - lips_y, 8.0)
    # the region that changes: from the lips down past the chin, across the jaw
    x0, x1 = int(max(0, pts[4, 0])), int(min(w, pts[12, 0] + 1))
    y0, y1 = int(max(0, lips_y - 0.3 * fall)), int(min(h, chin_y + 1.0 * fall + gap))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return image
    gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    cx, half = float((left[0] + right[0]) / 2), mouth_w / 2
    seam = np.interp(gx, xs, ys)
    # across: an ellipse between the corners for the gap, a wider bump for the jaw below
    u = (gx - cx) / half
    lip_profile = np.sqrt(np.clip(1 - u ** 2, 0, 1))
    jaw_profile = np.exp(-0.5 * ((gx - cx) / (1.1 * half)) ** 2)
    below = gy - seam
    # down: the full drop just under the lips and to the chin, fading into the neck
    t = np.clip((below - fall) / (0.9 * fall), 0, 1)
    down = 1 - t * t * (3 - 2 * t)
    near = np.clip(below / max(0.35 * fall, 1.0), 0, 1)
    profile = lip_profile * (1 - near) + jaw_profile * near
    # the jaw's pull fades out before the edges of the region, so no seam shows where it ends
    side = np.clip(np.minimum(gx - x0, x1 - 1 - gx) / max(0.18 * (x1 - x0), 1.0), 0, 1)
    shift = gap * profile * down * side * side * (3 - 2 * side)
    shift = np.where(below < 0, 0.0, shift)
    opening = gap * lip_profile
    inside = (below >= 0) & (below < opening)
    src_y = np.where(inside, seam, gy - shift)
    warped = np.stack([map_coordinates(image[..., c].astype(np.float32), [src_y, gx], order=1, mode="nearest")
                       for c in range(image.shape[2])], axis=-1)
    depth = np.where(inside, below / np.maximum(opening, 1e-3), 0)
    color = mouth_inside(image, pts, u, depth, opening, mouth_w)
    # soft edge so the lips' outline stays anti-aliased
    edge = np.clip(np.minimum(below, opening - below), 0, 1.0)[..., None] * inside[..., None]
    out_region = warped * (1 - edge) + color * edge
    out = image.copy()
    out[y0:y1, x0:x1] = np.clip(out_region, 0, 255).astype(np.uint8)
    return out


def _smooth(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def mouth_inside(image: np.ndarray, pts: np.ndarray, u: np.ndarray, depth: np.ndarray, opening: np.ndarray,
                 mouth_w: float) -> np.ndarray:
    """The colour of the open mouth at each pixel, from `u` (-1..1 across, corner to corner) and `depth`
    (0 at the upper lip .. 1 at the lower lip); `opening` is the gap's height in pixels there."""
    # tint and light from the person: the lips' colour and the face's brightness
    lips = np.concatenate([pts[48:60], (pts[48:60] + pts[[60, 61, 62, 63, 64, 64, 64, 65, 66, 67, 60, 60]]) / 2])
    ys = np.clip(lips[:, 1].round().astype(int), 0, image.shape[0] - 1)
    xs = np.clip(lips[:, 0].round().astype(int), 0, image.shape[1] - 1)
    lip = np.median(image[ys, xs].astype(np.float32), axis=0)
    face = image[int(max(pts[27, 1], 0)):int(pts[33, 1]) + 1, int(pts[31, 0]):int(pts[35, 0]) + 1].reshape(-1, 3)
    light = np.clip(face.astype(np.float32).mean() / 160.0 if face.size else 1.0, 0.45, 1.15)
    au = np.abs(u)
    # the cavity: dark red, darkest at the back and middle, lighter where the lips turn inwards
    rim = 1 - _smooth(np.minimum.reduce([depth, 1 - depth, (1 - au) * 1.6]), 0.0, 0.35)
    cavity = lip * (0.16 + 0.3 * rim)[..., None]
    # the tongue: a low rounded shape behind the lower teeth, lit from above
    tongue_top = 0.68 + 0.2 * au ** 2
    tongue = _smooth(depth, tongue_top, tongue_top + 0.15) * (1 - _smooth(au, 0.5, 0.75))
    tongue_color = lip * np.array([0.78, 0.5, 0.54]) * (0.4 + 0.3 * (1 - _smooth(depth, tongue_top, 1.0)))[..., None]
    color = cavity * (1 - tongue[..., None]) + tongue_color * tongue[..., None]
    # the upper teeth, as tall as a real front tooth shows, receding into shade towards the corners;
    # each tooth's edge is rounded (shorter where it meets the next) and the joins are faintly darker
    px = u * mouth_w / 2  # pixels across
    near_gap = np.zeros_like(u)
    join = np.zeros_like(u)
    for g in TOOTH_GAPS:
        for x in {g, -g}:
            d = (px - x * mouth_w / 2) / max(mouth_w, 1.0)
            near_gap = np.maximum(near_gap, np.exp(-0.5 * (d / 0.03) ** 2))
            join = np.maximum(join, np.exp(-0.5 * (d * max(mouth_w, 1.0) / 0.6) ** 2))
    height = np.minimum(0.5, 0.12 * mouth_w / np.maximum(opening, 1.0)) * (1 - 0.18 * near_gap) * (1 - 0.25 * au)
    front = 1 - _smooth(depth, height * 0.8, height)
    shade = (1 - 0.45 * au ** 2) * (1 - 0.15 * join) * (0.8 + 0.2 * _smooth(depth, 0.0, 0.3 * height + 1e-3))
    upper = front * (1 - _smooth(au, 0.8, 0.97))
    # lower teeth just show along the lower lip when the mouth is wide
    wide = _smooth(opening / max(mouth_w, 1.0), 0.3, 0.45)
    lower = wide * _smooth(depth, 0.9, 0.96) * (1 - _smooth(au, 0.45, 0.7))
    teeth = TEETH * light * shade[..., None]
    color = color * (1 - upper[..., None]) + teeth * upper[..., None]
    color = color * (1 - lower[..., None]) + teeth * 0.6 * lower[..., None]
    return color


def shift_frame(image: np.ndarray, dx: float, dy: float, angle_deg: float) -> np.ndarray:
    """Small rigid head motion: rotate about the centre and translate, edges repeated."""
    from PIL import Image

    pil = Image.fromarray(image)
    # PIL moves by fractions of a pixel too; its stubs ask for ints
    moved = pil.rotate(angle_deg, resample=Image.Resampling.BILINEAR, translate=(dx, dy), fillcolor=None)  # type: ignore[arg-type]
    arr = np.asarray(moved)
    if dx or dy or angle_deg:
        # rotating leaves black corners; fill them from the original so no border flickers
        mask = arr.sum(-1) == 0
        if mask.any():
            arr = arr.copy()
            arr[mask] = image[mask]
    return arr
