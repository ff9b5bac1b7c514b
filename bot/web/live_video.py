"""The avatar's face as the live session's WebRTC video track, lip-synced to the audio track by one media clock.

Frame n of the track belongs to media time n / fps and is sent then (pts n * 90000 / fps); the browser
lines it up with the audio by the times the two tracks are sent at. `speak(audio, start_at)` has a
thread draw that audio's frames ahead of time, frame k for media time start_at + k / fps, where
`start_at` is when the audio track sends the audio's first sample; `interrupt()` (barge-in) drops every
frame not yet shown. Between answers the face idles. recv() never waits for drawing: when a frame is
not ready in time the last one shown stays up another frame.

The face comes from a `geneface.stream.FaceStream` (handed in through bot/common); this module only
paces and schedules it.
"""
from __future__ import annotations

import asyncio
import fractions
import logging
import math
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

from core.types import Audio

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
IDLE_AHEAD = 3  # idle frames kept drawn ahead of the one showing
SPEECH_AHEAD = 2.0  # seconds of speech frames drawn ahead at most: 50 frames of 512 px are 40 MB


@dataclass
class _Speech:
    audio: Audio
    start_at: float
    done: Future = field(default_factory=Future)


class AvatarVideoTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, face_stream, clock, fps: int = 25) -> None:
        """`face_stream`: a FaceStream (feed/stream, idle, reset); `clock`: the session's media clock (`now()`, in s)."""
        super().__init__()
        self.face = face_stream
        self.clock = clock
        self.fps = fps
        self._cond = threading.Condition()
        self._speech: dict[int, np.ndarray] = {}  # media frame number → frame to show then
        self._idle: dict[int, np.ndarray] = {}
        self._last_idle: np.ndarray | None = None
        self._fallback: np.ndarray | None = None  # shown when the due frame is not drawn yet
        self._jobs: deque[_Speech] = deque()
        self._generation = 0  # bumped by interrupt(): work of an older generation is thrown away
        self._next = 0  # the next frame number recv() shows
        self._early = 0  # frames sent before the clock started (pts keep rising across its start)
        self._last_sent = 0.0
        self.shown = self.repeated = 0  # frames handed out; of those, shown again because the due one was not drawn
        self._running = True
        self._error: Exception | None = None
        # what the face stream's frame 0 is: its media frame number, and the start of its audio in media time
        self._anchor: tuple[int, int, float] | None = None  # (generation, frame number, media time)
        self._thread = threading.Thread(target=self._draw_loop, name="avatar-video", daemon=True)
        self._thread.start()

    # ---- the event loop's side ----

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        started = getattr(self.clock, "started", True)
        if not started:
            n, pts = self._next, await self._before_clock()
        else:
            n = self._next
            if self.clock.now() >= (n + 1) / self.fps:  # late by more than a frame: show what is due now
                n = math.floor(self.clock.now() * self.fps)
            while (wait := n / self.fps - self.clock.now()) > 0:  # noqa: ASYNC110 - waits on a clock, which no event marks
                await asyncio.sleep(min(wait, 0.1))
            pts = self._early + n
        # the first frame is being drawn (in a thread, which has no event to set)
        while self._fallback is None and self._last_idle is None and self._error is None:  # noqa: ASYNC110 - see above
            await asyncio.sleep(0.005)
        if self._error is not None:
            self.stop()
            raise MediaStreamError(f"the avatar could not be drawn: {self._error!r}")
        with self._cond:
            frame = self._take(n)
            if started:  # before it, frame 0 of the media clock is still to come
                self._next = n + 1
            self._cond.notify_all()
        out = VideoFrame.from_ndarray(frame, format="rgb24")
        out.pts = pts * VIDEO_CLOCK // self.fps
        out.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return out

    async def _before_clock(self) -> int:
        """The pts of a frame sent before the audio starts: there is no media time yet, so the wall clock paces them."""
        wait = self._last_sent + 1 / self.fps - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_sent = time.monotonic()
        self._early += 1
        return self._early - 1

    def _take(self, n: int) -> np.ndarray:
        frame = self._speech.pop(n, None)
        idle = self._idle.pop(n, None)
        if frame is None:
            frame = idle
        if frame is None:
            frame = self._fallback if self._fallback is not None else self._last_idle
            assert frame is not None  # recv() waits until a first frame is drawn
            self.repeated += 1
        self.shown += 1
        for frames in (self._speech, self._idle):
            for stale in [k for k in frames if k < n]:
                del frames[stale]
        self._fallback = frame
        return frame

    def speak(self, audio: Audio, start_at: float) -> Future:
        """Show `audio`'s frames from media time `start_at` on. The future gives the number of frames drawn for it
        once they all are (fewer when interrupt() came first)."""
        job = _Speech(audio, start_at)
        with self._cond:
            self._jobs.append(job)
            self._cond.notify_all()
        return job.done

    def interrupt(self) -> None:
        """Drop every speech frame not yet shown, and what is still to be drawn; the face idles from the next frame."""
        with self._cond:
            self._generation += 1
            self._speech.clear()
            for job in self._jobs:
                job.done.set_result(0)
            self._jobs.clear()
            self._fallback = self._last_idle
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        super().stop()

    # ---- the drawing thread's side: the only one that touches the face stream ----

    def _draw_loop(self) -> None:
        try:
            _yield_to_the_voice()
            self._draw_forever()
        except Exception as exc:  # the face cannot be drawn at all: recv() ends the track instead of freezing it
            log.exception("the avatar's video track stopped drawing")
            self._error = exc

    def _draw_forever(self) -> None:
        self._draw_idle([self._next])
        while True:
            with self._cond:
                while self._running and not self._jobs and not self._idle_due():
                    self._cond.wait(0.2)
                if not self._running:
                    return
                job = self._jobs.popleft() if self._jobs else None
                generation = self._generation
            if job is None:
                self._draw_idle(self._idle_due())
                continue
            try:
                made = self._draw_speech(job, generation)
            except Exception as exc:  # this answer shows no face; the next one starts the stream afresh
                log.exception("drawing an answer's face failed")
                self._anchor = None
                if not job.done.done():
                    job.done.set_exception(exc)
                continue
            if not job.done.done():
                job.done.set_result(made)

    def _idle_due(self) -> list[int]:
        """Frame numbers just ahead that have nothing to show yet (called holding the lock)."""
        return [n for n in range(self._next, self._next + IDLE_AHEAD) if n not in self._speech and n not in self._idle]

    def _draw_idle(self, numbers: list[int]) -> None:
        for n in numbers:
            frame = self.face.idle(pose=n)
            with self._cond:
                if n >= self._next:
                    self._idle[n] = frame
                self._last_idle = frame
                if self._fallback is None:
                    self._fallback = frame

    def _draw_speech(self, job: _Speech, generation: int) -> int:
        start = round(job.start_at * self.fps)
        anchor = self._anchor
        follows = (anchor is not None and anchor[0] == generation
                   and abs(anchor[2] + self.face.seconds - job.start_at) < 0.5 / self.fps)
        if not follows:
            # a new utterance, or one after a pause: its first frame starts the face stream afresh
            self.face.reset()
            self._anchor = anchor = (generation, start, job.start_at)
        assert anchor is not None  # set just above when it did not follow on
        n = first = anchor[1] + self.face.frames_made
        made = 0
        for frame in self.face.stream(job.audio, pose=n):
            with self._cond:
                if self._generation != generation or not self._running:
                    self._anchor = None
                    return made
                if n >= self._next:
                    self._speech[n] = frame
                n += 1
                made += 1
            # no further ahead than SPEECH_AHEAD; meanwhile the face idles until the speech begins
            while True:
                with self._cond:
                    if not self._running or self._generation != generation:
                        break
                    due = [k for k in self._idle_due() if k < first]
                    if not due:
                        if n <= self._next + SPEECH_AHEAD * self.fps:
                            break
                        self._cond.wait(0.1)
                        continue
                self._draw_idle(due)
        return made


FACE_NICENESS = 10


def _yield_to_the_voice() -> None:
    """Lower this thread's CPU priority (Linux schedules threads one by one): on a machine with few cores the
    face then draws with what hearing, the model and the voice leave, instead of delaying the answer; a frame
    drawn late only leaves the last one up a little longer."""
    import os

    try:
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + FACE_NICENESS))
    except (AttributeError, OSError):  # not Linux, or not allowed: draw at the usual priority
        pass
