"""A scripted live-talk client: what the browser does on /live, with aiortc instead of a page.

It opens the page (session cookie, CSRF token), posts an offer whose microphone track plays the clips it is
given in real time (silence between them), and notes when each received 20 ms of answer audio arrived and
how loud it was, and every event the server sent on the data channel. Tests and bench/live.py use it.
"""
from __future__ import annotations

import asyncio
import fractions
import json
import re
import time
from dataclasses import dataclass, field

import aiohttp
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from adapters.media import resample
from core.types import Audio

RATE = 48_000
FRAME = RATE // 50
AUDIBLE = 0.01  # RMS of a 20 ms frame above this is sound (-40 dBFS); Piper's pauses sit far below


@dataclass(eq=False)
class Said:
    """A clip the microphone played; `started`/`ended`: when its first and last samples were sent."""

    samples: np.ndarray
    sent: int = 0
    started: float | None = None
    ended: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class ScriptedMic(MediaStreamTrack):
    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: list[Said] = []
        self._timestamp = 0
        self._origin: float | None = None

    def say(self, audio: Audio) -> Said:
        pcm = (np.clip(resample(audio, RATE).samples, -1, 1) * 32767).astype(np.int16)
        said = Said(pcm)
        self._queue.append(said)
        return said

    async def recv(self) -> av.AudioFrame:
        if self._origin is None:
            self._origin = time.monotonic()
        wait = self._origin + self._timestamp / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        pcm = np.zeros(FRAME, dtype=np.int16)
        filled = 0
        now = time.monotonic()
        while filled < FRAME and self._queue:
            head = self._queue[0]
            if head.started is None:
                head.started = now + filled / RATE
            take = min(FRAME - filled, len(head.samples) - head.sent)
            pcm[filled:filled + take] = head.samples[head.sent:head.sent + take]
            head.sent += take
            filled += take
            if head.sent >= len(head.samples):
                head.ended = now + filled / RATE
                head.done.set()
                self._queue.pop(0)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._timestamp
        frame.time_base = fractions.Fraction(1, RATE)
        self._timestamp += FRAME
        return frame


class LiveClient:
    def __init__(self, base_url: str, *, receive_prefetch: int | None = None, video: bool = False) -> None:
        self.base_url = base_url
        self.video = video  # ask for the talking head, as the page does when an avatar is chosen
        self.frames: list[tuple[float, object]] = []  # (arrival time, av.VideoFrame) of the face's frames
        # packets aiortc holds before decoding the answer audio: None keeps its default (4, about 100 ms; a
        # browser's adaptive buffer holds some tens of ms on a quiet network); 0 decodes each once the next is in
        self.receive_prefetch = receive_prefetch
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.mic = ScriptedMic()
        self.pc = RTCPeerConnection()
        self.heard: list[tuple[float, float]] = []  # (arrival time, RMS) of each received frame
        self.events: list[tuple[float, dict]] = []
        self._changed = asyncio.Event()
        self._reader: asyncio.Task | None = None
        self._watcher: asyncio.Task | None = None
        self.session = ""

    async def connect(self, *, expect_status: int = 200) -> dict:
        async with self.http.get(f"{self.base_url}/live") as page:
            html = await page.text()
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
        self.pc.addTrack(self.mic)
        if self.video:
            self.pc.addTransceiver("video", direction="recvonly")
        channel = self.pc.createDataChannel("events")

        @channel.on("message")
        def on_message(message: str) -> None:
            self.events.append((time.monotonic(), json.loads(message)))
            self._changed.set()

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                if self.receive_prefetch is not None:
                    from aiortc.jitterbuffer import JitterBuffer

                    for transceiver in self.pc.getTransceivers():
                        if transceiver.receiver.track is track:
                            transceiver.receiver._RTCRtpReceiver__jitter_buffer = JitterBuffer(
                                capacity=16, prefetch=self.receive_prefetch)
                self._reader = asyncio.create_task(self._listen(track))
            else:
                self._watcher = asyncio.create_task(self._watch(track))

        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = {"sdp": self.pc.localDescription.sdp, "type": self.pc.localDescription.type}
        async with self.http.post(f"{self.base_url}/live/offer", json=offer, headers={"x-csrf-token": csrf}) as r:
            body = await r.json()
            assert r.status == expect_status, (r.status, body)
        if r.status == 200:
            self.session = body["session"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
        return body

    async def _listen(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            pcm = frame.to_ndarray().astype(np.float32).reshape(-1) / 32768.0
            self.heard.append((time.monotonic(), float(np.sqrt(np.mean(pcm * pcm)))))
            self._changed.set()

    async def _watch(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            self.frames.append((time.monotonic(), frame))
            del self.frames[:-500]  # the last 20 s are plenty

    def say(self, audio: Audio) -> Said:
        return self.mic.say(audio)

    async def until(self, check, timeout: float):
        """The first non-None result of `check()`, re-checked whenever audio or an event arrives."""
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found is not None:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the live session did not get there in time")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
            except TimeoutError:
                pass

    async def first_sound(self, after: float, timeout: float = 30.0) -> float:
        """When the first audible answer audio after `after` arrived."""
        return await self.until(lambda: next((t for t, rms in self.heard if t > after and rms > AUDIBLE), None), timeout)

    async def quiet_from(self, after: float, hold: float = 1.0, timeout: float = 30.0) -> float:
        """When answer audio went quiet after `after` and stayed quiet for `hold` seconds: the arrival of the first
        silent frame after the last audible one."""
        def check():
            last_sound = None
            for t, rms in self.heard:
                if t > after and rms > AUDIBLE:
                    last_sound = t
            start = after if last_sound is None else last_sound
            following = [t for t, _ in self.heard if t > start]
            if following and following[-1] - following[0] >= hold:
                return following[0]
            return None
        return await self.until(check, timeout)

    async def event(self, name: str, timeout: float = 30.0, after: float = 0.0) -> dict:
        return await self.until(lambda: next((e for t, e in self.events if e["event"] == name and t > after), None), timeout)

    def said_events(self, name: str) -> list[dict]:
        return [e for _, e in self.events if e["event"] == name]

    async def close(self) -> None:
        await self.pc.close()
        for task in (self._reader, self._watcher):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self.http.close()
