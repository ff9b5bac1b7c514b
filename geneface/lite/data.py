"""What the lite network learns from: mouth-region crops that follow the head, and the speech's mel frames around each.

The crop is anchored on the nose tip, which does not move when the jaw drops, so where the crop sits
says nothing about how open the mouth is: only the audio can tell the network that.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from core.types import Audio

MEL_RATE = 100  # Whisper's log-mel: 10 ms hop at 16 kHz
MEL_BINS = 80
WINDOW = 16  # mel frames seen per video frame: 160 ms around it
KEEP_TOP = 0.3  # the crop above the nose tip stays visible to the network and is never replaced
PARTNERS = 8  # pose-matched frames kept per frame, to draw training references from
MIN_GAP = 12  # frames (~0.5 s) between a target and its reference: their mouths must be unrelated


def mel(audio: Audio) -> np.ndarray:
    """(T, 80) float32 Whisper log-mel at 100 frames/s (the bundled faster-whisper's extractor)."""
    from adapters.media import resample  # PyAV: only here, so rendering from a mel computed elsewhere needs none

    samples = resample(audio, 16_000).samples
    m = _extractor()(samples, padding=0).T.astype(np.float32)
    if m.size:
        # relative to the clip's loud frames: a quiet recording must open the mouth as wide as a loud one
        m = (m - np.percentile(m.mean(1), 95)) * 2.0
    return m


def mel_filters() -> np.ndarray:
    """(80, 201) the mel filter bank behind `mel()`, for code that computes the same features a piece at a time."""
    return _extractor().mel_filters


@lru_cache(maxsize=1)
def _extractor():
    from faster_whisper.feature_extractor import FeatureExtractor

    return FeatureExtractor(feature_size=MEL_BINS)


def mel_windows(m: np.ndarray, n_frames: int, fps: float = 25.0) -> np.ndarray:
    """(n_frames, 80, WINDOW): the mel frames centred on each video frame, edges padded with silence."""
    per = MEL_RATE / fps
    floor = float(m.min()) if m.size else -1.0
    padded = np.concatenate([np.full((WINDOW, MEL_BINS), floor, np.float32), m, np.full((WINDOW * 2, MEL_BINS), floor, np.float32)])
    starts = (np.arange(n_frames) * per + per / 2 - WINDOW / 2).round().astype(int) + WINDOW
    idx = starts[:, None] + np.arange(WINDOW)[None, :]
    idx = np.clip(idx, 0, len(padded) - 1)
    return np.ascontiguousarray(padded[idx].transpose(0, 2, 1))


def crop_boxes(points: list[np.ndarray | None]) -> np.ndarray:
    """(n, 4) float boxes (left, top, side, side) over the lower face, smoothed over time; gaps filled from neighbours.

    The anchor is the bridge of the nose and the eye corners, which a dropping jaw does not move; dlib's
    nose tip and jaw line shift a little with the mouth, and a crop that moved with the mouth would tell
    the network how open it is without any sound.
    """
    n = len(points)
    known = [i for i, p in enumerate(points) if p is not None]
    if not known:
        raise ValueError("no landmarks")
    rigid = [27, 28, 29, 30, 36, 39, 42, 45]
    present = [p for p in points if p is not None]  # in the order of `known`
    anchor = np.array([p[rigid].mean(0) for p in present])
    tip = np.array([p[33] - p[rigid].mean(0) for p in present])
    jaw = np.array([np.linalg.norm(p[2] - p[14]) for p in present])
    side = float(np.median(jaw) * 1.25)
    offset = np.median(tip, axis=0)
    ax = np.interp(np.arange(n), known, anchor[:, 0]) + offset[0]
    ay = np.interp(np.arange(n), known, anchor[:, 1]) + offset[1]
    k = np.ones(5) / 5
    ax = np.convolve(np.pad(ax, 2, mode="edge"), k, mode="valid")
    ay = np.convolve(np.pad(ay, 2, mode="edge"), k, mode="valid")
    # the nose tip sits at KEEP_TOP: everything from the upper lip down is hidden from the network
    return np.stack([ax - side / 2, ay - KEEP_TOP * side, np.full(n, side), np.full(n, side)], axis=1).astype(np.float32)


def cut(frames, boxes, size: int):
    """Crops (B, 3, size, size) float 0..1 from frames (B, H, W, 3) uint8 tensors at float boxes, bilinear, edges repeated.

    One torch function for training and rendering, on CPU or GPU alike, so both see the same pixels.
    """
    import torch
    from torch.nn import functional as F

    b, fh, fw, _ = frames.shape
    boxes = np.asarray(boxes, np.float32)
    # only the window around each box becomes float: a 512 px frame is 6x the pixels of its crop's window
    n = int(np.ceil(boxes[:, 2].max())) + 3
    x0 = np.floor(boxes[:, 0]).astype(int) - 1
    y0 = np.floor(boxes[:, 1]).astype(int) - 1
    ar = np.arange(n)
    ys = torch.as_tensor(np.clip(y0[:, None] + ar, 0, fh - 1), device=frames.device)
    xs = torch.as_tensor(np.clip(x0[:, None] + ar, 0, fw - 1), device=frames.device)
    k = torch.arange(b, device=frames.device)[:, None, None]
    x = frames[k, ys[:, :, None], xs[:, None, :]].permute(0, 3, 1, 2).float() / 255
    h = w = n
    boxes = torch.as_tensor(boxes - np.stack([x0, y0, 0 * x0, 0 * x0], 1).astype(np.float32), device=frames.device)
    left, top, side = boxes[:, 0], boxes[:, 1], boxes[:, 2]
    theta = torch.zeros(b, 2, 3, device=frames.device)
    # output pixel centres map to left + (i + 0.5) * side / size, in grid_sample's align_corners=False units
    theta[:, 0, 0] = side / w
    theta[:, 0, 2] = (2 * left + side) / w - 1
    theta[:, 1, 1] = side / h
    theta[:, 1, 2] = (2 * top + side) / h - 1
    grid = F.affine_grid(theta, [b, 3, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@lru_cache(maxsize=8)
def paste_mask(size: int) -> np.ndarray:
    """Alpha for putting a generated crop back: nothing above the mouth, soft towards every edge."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    top = np.clip((y - KEEP_TOP) / 0.12, 0, 1)
    sides = np.clip(np.minimum(x, 1 - x) / 0.16, 0, 1)
    bottom = np.clip((1 - y) / 0.12, 0, 1)
    return (top * sides * bottom).astype(np.float32)


def hide_mouth(crops):
    """Keep only the top of (B, C, S, S) crops: the pose shows, the mouth doesn't."""
    out = crops.clone()
    out[..., int(KEEP_TOP * crops.shape[-2]):, :] = 0
    return out


def pose_partners(points: list[np.ndarray | None], boxes: np.ndarray, k: int = PARTNERS, gap: int = MIN_GAP) -> np.ndarray:
    """(n, k) indices of other frames whose head pose (brows, eyes, nose inside the crop) is closest to each frame's."""
    n = len(points)
    upper = np.full((n, 19 * 2), np.nan, np.float32)
    for i, p in enumerate(points):
        if p is not None:
            upper[i] = ((p[17:36] - boxes[i, :2]) / boxes[i, 2]).reshape(-1)
    upper = np.where(np.isnan(upper), np.nanmean(upper, axis=0), upper)
    out = np.empty((n, k), np.int64)
    idx = np.arange(n)
    for start in range(0, n, 512):
        d = ((upper[start:start + 512, None, :] - upper[None, :, :]) ** 2).sum(-1)
        rows = idx[start:start + 512]
        d[np.abs(rows[:, None] - idx[None, :]) < min(gap, max(1, n // 4))] = np.inf
        out[start:start + 512] = np.argsort(d, axis=1)[:, :k]
    return out


def paste(frames, crops, boxes):
    """Blend generated crops (B, 3, S, S) back into frames (B, H, W, 3) uint8 at their boxes; returns new uint8 frames."""
    import torch
    from torch.nn import functional as F

    out = frames.clone()
    h, w = frames.shape[1:3]
    side = int(round(float(boxes[0][2])))  # every box of a video has the same side
    big = F.interpolate(crops, size=(side, side), mode="bilinear", align_corners=False).permute(0, 2, 3, 1) * 255
    alpha = torch.from_numpy(paste_mask(side)).to(frames.device)[..., None]
    for k, box in enumerate(boxes):
        left, top = int(round(float(box[0]))), int(round(float(box[1])))
        x0, y0, x1, y1 = max(0, left), max(0, top), min(w, left + side), min(h, top + side)
        if x1 <= x0 or y1 <= y0:
            continue
        a = alpha[y0 - top:y1 - top, x0 - left:x1 - left]
        region = out[k, y0:y1, x0:x1].float()
        sub = big[k, y0 - top:y1 - top, x0 - left:x1 - left]
        out[k, y0:y1, x0:x1] = (region * (1 - a) + sub * a).round().clamp(0, 255).to(torch.uint8)
    return out


@dataclass
class Prepared:
    """Training arrays from one video, small enough to keep on a GPU: crops (n, S, S, 3) uint8, mel windows, boxes."""

    crops: np.ndarray
    windows: np.ndarray
    boxes: np.ndarray
    partners: np.ndarray
    size: int

    def save(self, path) -> None:
        np.savez(path, crops=self.crops, windows=self.windows, boxes=self.boxes, partners=self.partners, size=self.size)

    @staticmethod
    def load(path) -> "Prepared":
        z = np.load(path, allow_pickle=False)
        return Prepared(z["crops"], z["windows"], z["boxes"], z["partners"], int(z["size"]))


def prepare(footage, size: int, mel_frames: np.ndarray | None = None, check=None) -> Prepared:
    """Crops, mel windows and pose partners from a `geneface.intake.Footage` (decoded a second time, frame by frame).

    `mel_frames`: the footage's mel (from `mel()`), when it was computed elsewhere. `check`, when given, is
    called at every frame and may raise to stop (a cancelled job).
    """
    import torch

    boxes = crop_boxes(footage.points)
    parts: list[torch.Tensor] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        start = sum(len(p) for p in parts)
        x = cut(torch.from_numpy(np.stack(batch)), boxes[start:start + len(batch)], size)
        parts.append((x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
        batch.clear()

    for frame in footage.frames():
        if check is not None:
            check()
        batch.append(frame)
        if len(batch) == 64:
            flush()
    if batch:
        flush()
    crops = np.concatenate(parts)
    if len(crops) < len(boxes):  # a stream that ended a frame early: keep what lines up
        boxes = boxes[:len(crops)]
    windows = mel_windows(mel(footage.audio) if mel_frames is None else mel_frames, len(crops), footage.fps)
    return Prepared(crops, windows, boxes, pose_partners(footage.points[:len(crops)], boxes), size)
