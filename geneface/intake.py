"""Checking an uploaded video before any training, and turning it into frames, audio and tracked landmarks.

Every refusal says what to change ("the video is 6 s long; send at least 20 s"), and nothing is queued
for a video that fails a check.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from adapters.media import Source, decode_audio
from adapters.video import read_frames, read_info
from core.errors import AudioTooLong, BadReference, UnreadableAudio
from core.types import Audio
from geneface import landmarks as lm

FPS = 25


@dataclass(frozen=True)
class IntakeRules:
    min_seconds: float = 20.0
    max_seconds: float = 600.0
    min_fps: float = 20.0
    min_side: int = 256  # the shorter side, in pixels
    min_face_share: float = 0.8  # of the sampled frames, how many must show exactly one clear face
    min_face_width: float = 0.12  # of the shorter side: smaller is too far away to animate
    samples: int = 24


@dataclass
class Footage:
    """A checked video at 25 fps: its landmarks per frame, 16 kHz audio, and its first seconds kept as idle frames.

    Frames are decoded again when needed (`frames()`) rather than held: three minutes at 512 px would be 3.5 GB.
    """

    data: Source
    audio: Audio
    points: list[np.ndarray | None]
    idle: list[np.ndarray]
    max_side: int = 512
    fps: int = FPS

    @property
    def seconds(self) -> float:
        return len(self.points) / self.fps

    def frames(self) -> Iterator[np.ndarray]:
        return itertools.islice(read_frames(self.data, max_side=self.max_side, fps=self.fps), len(self.points))


def check_video(data: Source, rules: IntakeRules = IntakeRules()) -> dict:
    """Refuse a video that can't make an avatar (BadReference with the reason); return what was measured.

    The length comes from the container, or from its packets' timestamps (never past the limit) where it
    states none, so a long video is refused before a frame is decoded."""
    try:
        info = read_info(data, measure_up_to=rules.max_seconds + 1)
    except UnreadableAudio as exc:
        raise BadReference("I could not read that video. Please send an MP4, MOV or WebM file.", detail=exc.detail) from exc
    if info.seconds < rules.min_seconds:
        raise BadReference(f"The video is {info.seconds:.0f} s long; please send at least {rules.min_seconds:.0f} s "
                           "of the person talking.")
    if info.seconds > rules.max_seconds:
        raise BadReference(f"The video is {info.seconds / 60:.0f} min long; the limit is {rules.max_seconds / 60:.0f} min.")
    if info.fps < rules.min_fps:
        raise BadReference(f"The video has {info.fps:.0f} frames per second; please send one with at least "
                           f"{rules.min_fps:.0f} (most phones record 25 or 30).")
    if min(info.width, info.height) < rules.min_side:
        raise BadReference(f"The video is {info.width}×{info.height}; please send one at least {rules.min_side} px "
                           "on its shorter side.")
    if not info.has_audio:
        raise BadReference("The video has no sound; the avatar learns the lips from the person's own speech.")
    faces = _face_counts(data, info.frames or int(info.seconds * info.fps), rules)
    good = sum(1 for n, width in faces if n == 1 and width >= rules.min_face_width)
    share = good / max(1, len(faces))
    if share < rules.min_face_share:
        none = sum(1 for n, _ in faces if n == 0)
        many = sum(1 for n, _ in faces if n > 1)
        small = sum(1 for n, w in faces if n == 1 and w < rules.min_face_width)
        if many >= max(none, small):
            reason = "more than one face is in the picture in many frames; please send a video of one person alone"
        elif small >= none:
            reason = "the face is too small; please film closer, with the face filling at least a fifth of the picture"
        else:
            reason = "I can't find a face in many frames; please face the camera in good light"
        raise BadReference(f"Only {share:.0%} of the video shows one clear face: {reason}.")
    return {"seconds": info.seconds, "fps": info.fps, "width": info.width, "height": info.height, "face_share": share}


def _face_counts(data: Source, total: int, rules: IntakeRules) -> list[tuple[int, float]]:
    wanted = set(np.linspace(0, max(total - 1, 0), rules.samples).astype(int).tolist())
    out = []
    for i, frame in enumerate(read_frames(data, max_side=640)):
        if i in wanted:
            faces = lm.detect(frame)
            # a small second "face" (a logo, a poster) does not count; a second person does
            clear = [f for f in faces if faces and f.width >= 0.5 * faces[0].width]
            width = faces[0].width / min(frame.shape[:2]) if faces else 0.0
            out.append((len(clear), width))
        if i >= max(wanted):
            break
    return out


def load_footage(data: Source, max_side: int = 512, rules: IntakeRules = IntakeRules(), idle_seconds: float = 8.0,
                 check: Callable[[], None] | None = None) -> Footage:
    """Check, then decode at 25 fps and track the face through every frame, keeping only the first seconds' pixels.

    `check` is called at every frame and may raise to stop (a cancelled job).
    """
    check_video(data, rules)
    idle: list[np.ndarray] = []
    keep = int(idle_seconds * FPS)
    # a container may state less than it holds: tracking and sound stop at the limit all the same
    limit = int(rules.max_seconds * FPS) + 1

    def frames() -> Iterator[np.ndarray]:
        for frame in itertools.islice(read_frames(data, max_side=max_side, fps=FPS), limit):
            if check is not None:
                check()
            if len(idle) < keep:
                idle.append(frame)
            yield frame

    points = lm.track(frames())
    if len(points) >= limit:
        raise BadReference(f"The video runs past the limit of {rules.max_seconds / 60:.0f} min.")
    try:
        audio = decode_audio(data, max_seconds=rules.max_seconds)
    except AudioTooLong:
        raise BadReference(f"The video's sound runs past the limit of {rules.max_seconds / 60:.0f} min.") from None
    found = sum(p is not None for p in points)
    if found < rules.min_face_share * len(points):
        raise BadReference(f"The face was lost in {1 - found / len(points):.0%} of the frames; please send a steadier "
                           "video facing the camera.")
    return Footage(data, audio, points, idle, max_side)
