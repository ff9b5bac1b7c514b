"""A talking face for speech that arrives a piece at a time (sentence by sentence), for live talk.

`FaceStream.feed(audio)` returns the frames that cover exactly the audio fed so far at 25 fps: the
fraction of a frame left at the end of a piece is drawn now and its sound is counted again with the
next piece, so a thousand pieces make as many frames as one piece of the same length (no drift). The
audio context each frame needs (the lite engine's mel window reaches 60 ms back) is carried across
pieces, so frames away from a piece's end are the frames the whole audio would give (no seam).

Lookahead: a frame depends on no audio later than `lookahead` seconds after its own end: 0 for the
photo engine (a frame's loudness), 62.5 ms for the lite engine (its 160 ms mel window, centred on the
frame, plus half an FFT window). At the end of a piece, whatever the lookahead would need is taken as
silence: the last frame or two before a pause close the mouth, as they should.

`idle()` draws the face with nobody speaking (the photo's sway and blinks, the lite engine's idle loop
with the mouth at rest); `pose` numbers the motion so speech and idle frames join without a jump.
"""
from __future__ import annotations

import math
from typing import Iterator, Protocol

import numpy as np

from core.types import Audio

FPS = 25
CONTEXT_SECONDS = 0.5  # audio kept before the next frame: more than any engine looks back


class Tail:
    """The audio since the stream's last reset, at the stream's rate, trimmed to what frames still need."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.start = 0  # index of samples[0] since the reset
        self.samples = np.zeros(0, np.float32)

    @property
    def end(self) -> int:
        return self.start + len(self.samples)

    def append(self, samples: np.ndarray) -> None:
        self.samples = np.concatenate([self.samples, samples.astype(np.float32, copy=False)])

    def get(self, a: int, b: int) -> np.ndarray:
        """Samples [a, b): silence before the stream began and after the audio fed so far."""
        if self.start > 0 and a < self.start:  # trimmed away: a frame asked further back than CONTEXT_SECONDS
            raise RuntimeError("audio before the kept context was asked for")
        out = np.zeros(max(0, b - a), np.float32)
        lo, hi = max(a, self.start), min(b, self.end)
        if hi > lo:
            out[lo - a:hi - a] = self.samples[lo - self.start:hi - self.start]
        return out

    def trim(self, keep_from: int) -> None:
        cut = min(max(0, keep_from - self.start), len(self.samples))
        if cut > 0:
            self.samples = self.samples[cut:]
            self.start += cut


class Driver(Protocol):
    """What an engine gives the stream: frames from the audio in a `Tail`, idle frames, and its lookahead."""

    lookahead: float

    def reset(self) -> None: ...

    def draw(self, tail: Tail, k0: int, k1: int, poses: list[int]) -> list[np.ndarray]: ...

    def idle(self, pose: int) -> np.ndarray: ...


class FaceStream:
    def __init__(self, engine, size: int = 512, batch: int = 8) -> None:
        """`engine`: a loaded `PhotoAvatar` or `LiteAvatar`; frames come out RGB uint8, their longer side `size` px."""
        self.driver: Driver = _driver_for(engine, size)
        self.fps = FPS
        self.batch = batch
        self.lookahead = self.driver.lookahead
        self._tail: Tail | None = None
        self._made = 0
        self._pose = 0

    @property
    def seconds(self) -> float:
        """Audio fed since the last reset."""
        return 0.0 if self._tail is None else self._tail.end / self._tail.rate

    @property
    def frames_made(self) -> int:
        return self._made

    def feed(self, audio: Audio, pose: int | None = None) -> list[np.ndarray]:
        return list(self.stream(audio, pose))

    def stream(self, audio: Audio, pose: int | None = None) -> Iterator[np.ndarray]:
        """`feed`, a batch of frames at a time: the audio is taken now, the frames are drawn as they are read.

        `pose`: the motion's frame number for this piece's first frame (by default, the one after the last frame made).
        """
        self._take(audio)
        if pose is not None:
            self._pose = pose
        tail = self._tail
        assert tail is not None  # taken just above
        target = math.ceil(tail.end * self.fps / tail.rate)
        return self._frames(target)

    def _frames(self, target: int) -> Iterator[np.ndarray]:
        while self._made < target:
            tail = self._tail
            assert tail is not None  # stream() took the audio first
            k0 = self._made
            k1 = min(target, k0 + self.batch)
            poses = list(range(self._pose, self._pose + k1 - k0))
            frames = self.driver.draw(tail, k0, k1, poses)
            self._made, self._pose = k1, self._pose + k1 - k0
            tail.trim(int((k1 / self.fps - CONTEXT_SECONDS) * tail.rate))
            yield from frames

    def idle(self, pose: int | None = None) -> np.ndarray:
        """The next frame with nobody speaking (or frame number `pose` of the idle motion)."""
        if pose is not None:
            self._pose = pose
        frame = self.driver.idle(self._pose)
        self._pose += 1
        return frame

    def reset(self) -> None:
        """Forget the speech so far (after an interruption, or before speech that does not follow on):
        the next piece starts a new frame count; the motion and the voice's learnt loudness go on."""
        self._tail = None
        self._made = 0
        self.driver.reset()

    def _take(self, audio: Audio) -> None:
        if self._tail is None:
            self._tail = Tail(audio.sample_rate)
        if audio.sample_rate != self._tail.rate:
            from adapters.media import resample

            audio = resample(audio, self._tail.rate)
        self._tail.append(audio.samples)


def _driver_for(engine, size: int) -> Driver:
    from geneface.lite.render import LiteAvatar

    if isinstance(engine, LiteAvatar):
        from geneface.lite.stream import LiteDriver

        return LiteDriver(engine, size)
    from geneface.photo import PhotoAvatar

    if isinstance(engine, PhotoAvatar):
        return PhotoDriver(engine, size)
    raise TypeError(f"no live face for {type(engine).__name__}")


class PhotoDriver:
    """The photo engine, frame by frame: the mouth opens with each frame's own loudness and takes its shape
    from the frame's sound; the head's liveliness follows the openings as in a recorded answer and, once the
    speech stops, settles frame by frame (a function of the pose alone, so idle frames are the same however
    often they are drawn)."""

    lookahead = 0.0

    def __init__(self, avatar, size: int) -> None:
        from geneface.warp import LoudnessFollower

        self.avatar = avatar.resized(size)
        self.loudness = LoudnessFollower()
        self._spoke = (0.0, 0)  # the liveliness after the last speech frame learnt from, and that frame's pose
        self._before = (0.0, 0)  # the liveliness when this speech began, and its first pose (idle frames drawn
        # ahead of it, after it was drawn, keep the motion they had)
        self._done = 0  # frames whose sound was complete and is learnt from

    def reset(self) -> None:
        self._done = 0
        self.loudness.restart()

    def _lively(self, pose: int) -> float:
        before, start = self._before
        if pose < start:
            return before
        level, at = self._spoke
        return level * SETTLE ** max(0, pose - at)

    def draw(self, tail: Tail, k0: int, k1: int, poses: list[int]) -> list[np.ndarray]:
        from geneface.photo import Motion
        from geneface.warp import lip_spread

        hop = tail.rate / FPS
        shapes = []
        prev = self.loudness.state
        motion = Motion()
        pose = poses[0] - (k0 - self._done)  # the pose of frame `_done` (drawn again when it was cut short)
        motion.level = self._lively(pose - 1)
        if self._done == 0:
            self._before = (motion.level, pose)
        # from the first frame not yet learnt from: the frame cut short at the last piece's end is heard whole now
        for k in range(self._done, k1):
            a, b = int(k * hop), int((k + 1) * hop)
            prev, db = self.loudness.opening(tail.get(a, b), prev)
            lively = motion.step(prev)
            if b <= tail.end and k == self._done:
                self.loudness.commit(prev, db)
                self._spoke = (motion.level, pose)
                self._done += 1
                pose += 1
            if k >= k0:
                spread = lip_spread(tail.get(max(0, int((k - 1) * hop)), b), tail.rate, prev)
                shapes.append((prev, spread, lively))
        return [self.avatar.frame(a, p, s, v) for (a, s, v), p in zip(shapes, poses)]

    def idle(self, pose: int) -> np.ndarray:
        return self.avatar.frame(0.0, pose, 0.0, self._lively(pose))


SETTLE = 0.96  # per frame: how a silent head's liveliness fades, as `Motion` fades it with the mouth closed
