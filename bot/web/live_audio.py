"""The answer's voice as a WebRTC audio track, and the speaker that drives it (and the face, when there is one).

The track sends 20 ms frames paced by the session's media clock: answer sentences in the order they were
queued, silence between them. It counts the samples sent of each sentence, so an interrupted answer is
known to have been heard up to where it stopped; `stop()` empties the queue and the next frame is silence.
"""
from __future__ import annotations

import asyncio
import fractions
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import av
import numpy as np
from aiortc import MediaStreamTrack

from adapters.media import resample
from bot.web.live_clock import MediaClock
from core.types import Audio

RATE = 48_000
FRAME = RATE // 50  # 20 ms, what WebRTC's Opus encoder takes
_TIME_BASE = fractions.Fraction(1, RATE)


@dataclass(eq=False)
class QueuedSpeech:
    samples: np.ndarray  # int16 at RATE
    start_at: float  # media time at which its first sample is sent (if nothing before it is stopped)
    sent: int = 0

    @property
    def fraction(self) -> float:
        return min(1.0, self.sent / len(self.samples)) if len(self.samples) else 1.0


class AnswerAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, clock: MediaClock) -> None:
        super().__init__()
        self.clock = clock
        self._queue: deque[QueuedSpeech] = deque()
        self._timestamp = 0  # samples sent so far; sample k goes out at media time k / RATE
        self._idle = asyncio.Event()
        self._idle.set()
        self.frames_sent = 0

    def say(self, audio: Audio) -> QueuedSpeech:
        pcm = (np.clip(resample(audio, RATE).samples, -1.0, 1.0) * 32767).astype(np.int16)
        ahead = sum(len(q.samples) - q.sent for q in self._queue)
        queued = QueuedSpeech(pcm, (self._timestamp + ahead) / RATE)
        self._queue.append(queued)
        self._idle.clear()
        return queued

    def stop(self) -> None:
        self._queue.clear()
        self._idle.set()

    @property
    def busy(self) -> bool:
        return bool(self._queue)

    async def finished(self) -> None:
        await self._idle.wait()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            from aiortc.mediastreams import MediaStreamError

            raise MediaStreamError
        self.clock.start()
        await self.clock.sleep_until(self._timestamp / RATE)
        pcm = np.zeros(FRAME, dtype=np.int16)
        filled = 0
        while filled < FRAME and self._queue:
            head = self._queue[0]
            take = min(FRAME - filled, len(head.samples) - head.sent)
            pcm[filled:filled + take] = head.samples[head.sent:head.sent + take]
            head.sent += take
            filled += take
            if head.sent >= len(head.samples):
                self._queue.popleft()
        if not self._queue:
            self._idle.set()
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._timestamp
        frame.time_base = _TIME_BASE
        self._timestamp += FRAME
        self.frames_sent += 1
        return frame


class FaceTrack(Protocol):
    """The avatar's video track (bot/web/live_video.py): mouth motion for audio starting at a media time."""

    def speak(self, audio: Audio, start_at: float) -> object:
        """Returns what the track hands back (a future of the drawing), which this side does not wait for."""
        ...

    def interrupt(self) -> None: ...


class LiveSpeaker:
    """The session's speaker (bot.common.live.Speaker): the voice track, and the face when an avatar is shown."""

    def __init__(self, voice: AnswerAudioTrack, face: FaceTrack | None = None) -> None:
        self.voice = voice
        self.face = face

    def say(self, audio: Audio) -> QueuedSpeech:
        queued = self.voice.say(audio)
        if self.face is not None:
            self.face.speak(audio, queued.start_at)
        return queued

    def stop(self) -> None:
        self.voice.stop()
        if self.face is not None:
            self.face.interrupt()

    @property
    def busy(self) -> bool:
        return self.voice.busy

    async def finished(self) -> None:
        await self.voice.finished()
