"""One media clock per live session, shared by the outgoing audio and video tracks.

Media time is seconds since the session's first audio frame was sent. The audio track starts the clock and
paces itself by it (audio sample k goes out at k / rate); the video track asks it which frame is due, and
`speak(audio, start_at)` names the media time at which that audio's first sample is sent, so mouth and
sound follow one timeline. Before the first audio frame the clock reads 0 and `started` is False.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable


class MediaClock:
    def __init__(self, source: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        self._origin: float | None = None

    def start(self) -> None:
        """Called by the audio track with its first frame; later calls change nothing."""
        if self._origin is None:
            self._origin = self._source()

    @property
    def started(self) -> bool:
        return self._origin is not None

    def now(self) -> float:
        """Seconds of media time: since the first audio frame, 0.0 before it."""
        return 0.0 if self._origin is None else self._source() - self._origin

    async def sleep_until(self, media_time: float) -> None:
        """Returns once the clock reads `media_time` (at once when it is past, or the clock has not started)."""
        wait = media_time - self.now()
        if self._origin is not None and wait > 0:
            await asyncio.sleep(wait)
