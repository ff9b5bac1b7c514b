"""Opening a face's mouth by warping one image: the photo engine's whole trick, and how the test clips are made.

The lower lip, chin and jaw are pulled down by a smooth displacement field; the gap that opens between
the lips is painted as the inside of a mouth (mouth_inside): upper teeth with their gaps and the shade
where they recede, a tongue, lower teeth when it is wide open, all lit and tinted from the person's own
lips and face so a dim photo does not get glowing teeth. The amount per frame comes from the speech's loudness.
"""
from __future__ import annotations

import numpy as np

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


# the balance of these bands (dB) tells a spread vowel, whose second formant is high ("ee", "ay"), from a
# rounded one, whose first two formants are both low ("oo", "oh")
LOW_BAND = (250.0, 1000.0)
HIGH_BAND = (1700.0, 3400.0)
SHAPE_CENTRE_DB = -18.0
SHAPE_SCALE_DB = 9.0


def lip_spread(samples: np.ndarray, rate: int, opening: float) -> float:
    """How far the lips spread (> 0) or round (< 0), -1..1, for a frame's sound (its samples and the frame's
    before: 80 ms) with the mouth `opening` (0..1) open: a closed or silent mouth keeps its shape."""
    x = samples.astype(np.float64)
    if x.size < 32 or opening < 0.05:
        return 0.0
    power = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
    freq = np.fft.rfftfreq(x.size, 1.0 / rate)
    low = power[(freq >= LOW_BAND[0]) & (freq < LOW_BAND[1])].sum()
    high = power[(freq >= HIGH_BAND[0]) & (freq < HIGH_BAND[1])].sum()
    balance = 10 * np.log10((high + 1e-12) / (low + 1e-12))
    return float(np.clip((balance - SHAPE_CENTRE_DB) / SHAPE_SCALE_DB, -1, 1) * min(1.0, opening / 0.3))


def spread_track(audio: Audio, fps: float, opening: np.ndarray) -> np.ndarray:
    """`lip_spread` per video frame of `audio`, the mouth opened as `opening` says."""
    hop = audio.sample_rate / fps
    x = audio.samples
    return np.array([lip_spread(x[max(0, int((i - 1) * hop)):int((i + 1) * hop)], audio.sample_rate, float(o))
                     for i, o in enumerate(opening)], np.float32)


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


def open_mouth(image: np.ndarray, pts: np.ndarray, amount: float, max_open: float = 0.55,
               spread: float = 0.0) -> np.ndarray:
    """`image` with the mouth opened by `amount` (0 closed .. 1 wide: `max_open` × the mouth's width) and its
    corners drawn out (`spread` > 0: an "ee") or in (< 0: a rounded "oo"), -1..1."""
    if amount <= 1e-3 and abs(spread) <= 1e-3:
        return image
    h, w = image.shape[:2]
    left, right = pts[48], pts[54]
    mouth_w = float(np.linalg.norm(right - left))
    gap = amount * max_open * mouth_w
    chin_y = float(pts[8, 1])
    # where the mouth parts: where the lips meet; in a photo that shows its upper teeth (a smile), under those
    # teeth, along the lower lip, so the teeth stay with the upper jaw instead of being split in two
    teeth = shows_teeth(image, pts)
    below_teeth = 1.0 if teeth else 0.5
    mids = [(pts[u] * (1 - below_teeth) + pts[lo] * below_teeth) for u, lo in zip(INNER_UPPER, INNER_LOWER)]
    xs = np.array([pts[60, 0], *[m[0] for m in mids], pts[64, 0]])
    ys = np.array([pts[60, 1], *[m[1] for m in mids], pts[64, 1]])
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    # a smooth curve through them: straight pieces between five points drew a V, not a lip
    curve = np.polyfit(xs - xs.mean(), ys, 2)
    xs = np.linspace(xs[0], xs[-1], 24)
    ys = np.polyval(curve, xs - xs.mean()) if ys.size >= 3 else np.interp(xs, xs, ys)
    lips_y = float(ys.mean())
    fall = max(chin_y - lips_y, 8.0)
    # the region that changes: from under the nose down past the chin, across the jaw
    x0, x1 = int(max(0, pts[4, 0])), int(min(w, pts[12, 0] + 1))
    y0, y1 = int(max(0, lips_y - 0.6 * fall)), int(min(h, chin_y + 1.0 * fall + gap))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return image
    gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    cx, half = float((left[0] + right[0]) / 2), mouth_w / 2
    # spreading or rounding: the lips and the skin around them are stretched across (or drawn in) about the
    # mouth's middle, most on the lips' line, fading towards the nose, the chin and the cheeks
    stretch = 1.0 + (0.09 if spread > 0 else 0.16) * spread
    across = 1 - _smooth(np.abs(gx - cx), 1.1 * half, 1.9 * half)
    along = 1 - _smooth(np.abs(gy - lips_y), 0.15 * fall, 0.55 * fall)
    edges = _smooth(np.minimum(gx - x0, x1 - 1 - gx), 0.0, max(0.12 * (x1 - x0), 1.0))
    sx = gx - (gx - cx) * (1 - 1 / stretch) * across * along * edges
    seam = np.interp(sx, xs, ys)
    # across: an ellipse between the corners for the gap, a wider bump for the jaw below
    u = (sx - cx) / half
    # the gap ends at the inner corners of the lips, a little short of the outer ones
    inner = max(float(np.linalg.norm(pts[64] - pts[60])) / 2, 0.5 * half) / half
    lip_profile = np.sqrt(np.clip(1 - (u / inner) ** 2, 0, 1))
    jaw_profile = np.exp(-0.5 * ((sx - cx) / (1.1 * half)) ** 2)
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
    warped = bilinear(image, src_y, sx)
    if gap > 0.5 and inside.any():
        # only the gap's pixels are painted (a few percent of the region): the inside is costly per pixel
        o = opening[inside]
        b = below[inside]
        color = mouth_inside(image, pts, u[inside], b / np.maximum(o, 1e-3), o, mouth_w, upper_teeth=not teeth)
        # soft edge so the lips' outline stays anti-aliased
        edge = np.clip(np.minimum(b, o - b), 0, 1.0)[:, None]
        warped[inside] = warped[inside] * (1 - edge) + color * edge
    out = image.copy()
    out[y0:y1, x0:x1] = np.clip(warped, 0, 255).astype(np.uint8)
    return out


def bilinear(image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The image's colours (float32) at points (ys, xs), interpolated between the four nearest pixels, edges
    repeated: all channels in one gather, several times quicker than one spline call per channel."""
    h, w = image.shape[:2]
    ys = np.clip(ys, 0, h - 1)
    xs = np.clip(xs, 0, w - 1)
    y0 = np.minimum(ys.astype(np.int32), h - 2)
    x0 = np.minimum(xs.astype(np.int32), w - 2)
    fy = (ys - y0)[..., None].astype(np.float32)
    fx = (xs - x0)[..., None].astype(np.float32)
    top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
    bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _smooth(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def shows_teeth(image: np.ndarray, pts: np.ndarray) -> bool:
    """Whether the photo's lips are parted over light teeth (a smile), rather than closed or over a dark gap."""
    gap = np.mean([pts[lo, 1] - pts[u, 1] for u, lo in zip(INNER_UPPER, INNER_LOWER)])
    mouth_w = float(np.linalg.norm(pts[54] - pts[48]))
    if gap < 0.06 * mouth_w:
        return False
    ys = np.clip(np.round((pts[list(INNER_UPPER), 1] + pts[list(INNER_LOWER), 1]) / 2).astype(int), 0, image.shape[0] - 1)
    xs = np.clip(np.round(pts[list(INNER_UPPER), 0]).astype(int), 0, image.shape[1] - 1)
    inside = image[ys, xs].astype(np.float32).mean()
    lips = image[np.clip(pts[48:60, 1].round().astype(int), 0, image.shape[0] - 1),
                 np.clip(pts[48:60, 0].round().astype(int), 0, image.shape[1] - 1)].astype(np.float32).mean()
    return bool(inside > 1.15 * lips)


def mouth_inside(image: np.ndarray, pts: np.ndarray, u: np.ndarray, depth: np.ndarray, opening: np.ndarray,
                 mouth_w: float, upper_teeth: bool = True) -> np.ndarray:
    """The colour of the open mouth at each pixel, from `u` (-1..1 across, corner to corner) and `depth`
    (0 at the upper lip .. 1 at the lower lip); `opening` is the gap's height in pixels there. Without
    `upper_teeth` (the photo's own show above the gap), the gap's top is the shade behind them."""
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
    cavity = lip * np.array([0.95, 0.7, 0.7]) * (0.2 + 0.28 * rim + 0.12 * depth)[..., None]
    # the tongue: a rounded hump filling the lower part, lit from above, shaded at its sides
    tongue_top = 0.5 + 0.35 * au ** 2
    tongue = _smooth(depth, tongue_top, tongue_top + 0.2) * (1 - _smooth(au, 0.6, 0.85))
    lit = 0.62 + 0.3 * (1 - _smooth(depth, tongue_top, 1.0)) - 0.25 * au ** 2
    tongue_color = lip * np.array([0.92, 0.58, 0.6]) * lit[..., None]
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
    upper = front * (1 - _smooth(au, 0.8, 0.97)) * (1.0 if upper_teeth else 0.0)
    # lower teeth just show along the lower lip when the mouth is wide
    wide = _smooth(opening / max(mouth_w, 1.0), 0.14, 0.26)
    lower = wide * _smooth(depth, 0.8, 0.9) * (1 - _smooth(au, 0.45, 0.7))
    teeth = TEETH * light * shade[..., None]
    color = color * (1 - upper[..., None]) + teeth * upper[..., None]
    color = color * (1 - lower[..., None]) + teeth * 0.78 * lower[..., None]
    return color


def shift_frame(image: np.ndarray, dx: float, dy: float, angle_deg: float,
                center: tuple[float, float] | None = None, margin: int = 0) -> np.ndarray:
    """Small rigid head motion: rotate about `center` (the picture's middle by default) and translate, edges repeated.

    `margin`: the image already has that many pixels of border around the picture (see `with_margin`): the
    motion shows them instead of black corners, and the picture without them is returned (a cheap way to
    repeat the edges)."""
    from PIL import Image

    pil = Image.fromarray(image)
    if center is not None and margin:
        center = (center[0] + margin, center[1] + margin)
    # PIL moves by fractions of a pixel too; its stubs ask for ints
    moved = pil.rotate(angle_deg, resample=Image.Resampling.BILINEAR, translate=(dx, dy), fillcolor=None,  # type: ignore[arg-type]
                       center=center)
    arr = np.asarray(moved)
    if margin:
        return arr[margin:arr.shape[0] - margin, margin:arr.shape[1] - margin]
    if dx or dy or angle_deg:
        # rotating leaves black corners; fill them from the original so no border flickers
        mask = arr.sum(-1) == 0
        if mask.any():
            arr = arr.copy()
            arr[mask] = image[mask]
    return arr


def with_margin(image: np.ndarray, margin: int) -> np.ndarray:
    """The image with its edge pixels repeated `margin` wide all round, for `shift_frame(..., margin=margin)`."""
    return np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
