"""Opening a face's mouth by warping one image: the photo engine's whole trick, and how the test clips are made.

The lower lip, chin and jaw are pulled down by a smooth displacement field; the gap that opens between
the lips is painted as the inside of a mouth. The amount per frame comes from the speech's loudness.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

from core.types import Audio
from geneface.landmarks import INNER_LOWER, INNER_UPPER

MOUTH_DARK = np.array([52, 18, 24], np.float32)
TEETH = np.array([214, 206, 196], np.float32)


def loudness_track(audio: Audio, fps: float, floor_db: float = -42.0, smooth: float = 0.5) -> np.ndarray:
    """How open the mouth is, 0..1, per video frame: frame loudness in dB above a floor, relative to the clip's peak."""
    n = max(1, int(round(audio.seconds * fps)))
    hop = audio.sample_rate / fps
    x = audio.samples.astype(np.float64)
    rms = np.array([np.sqrt(np.mean(x[int(i * hop): int((i + 1) * hop)] ** 2) + 1e-12) for i in range(n)])
    db = 20 * np.log10(rms + 1e-9)
    top = np.percentile(db, 95) if n > 4 else db.max()
    lo = max(floor_db, top - 30.0)
    level = np.clip((db - lo) / max(top - lo, 1e-6), 0.0, 1.0)
    # lips open fast and close a little slower, as they do
    out = np.empty_like(level)
    prev = 0.0
    for i, v in enumerate(level):
        prev = v if v > prev else prev * smooth + v * (1 - smooth)
        out[i] = prev
    return out.astype(np.float32)


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
    shift = gap * profile * down
    shift = np.where(below < 0, 0.0, shift)
    opening = gap * lip_profile
    inside = (below >= 0) & (below < opening)
    src_y = np.where(inside, seam, gy - shift)
    warped = np.stack([map_coordinates(image[..., c].astype(np.float32), [src_y, gx], order=1, mode="nearest")
                       for c in range(image.shape[2])], axis=-1)
    # inside of the mouth: dark, with a band of upper teeth when it is open enough
    depth = np.where(inside, below / np.maximum(opening, 1e-3), 0)
    teeth = (depth < 0.28) & (opening > 0.12 * mouth_w)
    color = np.where(teeth[..., None], TEETH, MOUTH_DARK * (0.7 + 0.6 * np.abs(depth - 0.5))[..., None])
    # soft edge so the lips' outline stays anti-aliased
    edge = np.clip(np.minimum(below, opening - below), 0, 1.0)[..., None] * inside[..., None]
    out_region = warped * (1 - edge) + color * edge
    out = image.copy()
    out[y0:y1, x0:x1] = np.clip(out_region, 0, 255).astype(np.uint8)
    return out


def shift_frame(image: np.ndarray, dx: float, dy: float, angle_deg: float) -> np.ndarray:
    """Small rigid head motion: rotate about the centre and translate, edges repeated."""
    from PIL import Image

    pil = Image.fromarray(image)
    moved = pil.rotate(angle_deg, resample=Image.BILINEAR, translate=(dx, dy), fillcolor=None)
    arr = np.asarray(moved)
    if dx or dy or angle_deg:
        # rotating leaves black corners; fill them from the original so no border flickers
        mask = arr.sum(-1) == 0
        if mask.any():
            arr = arr.copy()
            arr[mask] = image[mask]
    return arr
