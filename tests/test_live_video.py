"""The live session's video track: paced by the media clock, lip-synced to when the audio plays, cut by barge-in,
and carried by a real WebRTC connection (aiortc to aiortc in this process)."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from aiortc import RTCPeerConnection
from PIL import Image

from bot.web.live_video import AvatarVideoTrack
from geneface.photo import PhotoAvatar
from geneface.stream import FaceStream
from geneface.testclip import portrait
from tests.avatar_clips import held_out_audio

pytestmark = pytest.mark.slow


class FakeClock:
    """Media time that moves only when the test says."""

    started = True

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


class WallClock:
    started = True

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> PhotoAvatar:
    path = tmp_path_factory.mktemp("photo") / "face.png"
    Image.fromarray(portrait(256)[0]).save(path)
    return PhotoAvatar(path)


async def _show(track: AvatarVideoTrack, clock: FakeClock, n: int) -> tuple[int, np.ndarray]:
    clock.t = n / 25
    await asyncio.sleep(0.03)  # the drawing thread's turn, as real time between frames gives it
    frame = await track.recv()
    return frame.pts, frame.to_ndarray(format="rgb24")


async def test_speech_frames_show_when_their_audio_plays_and_barge_in_returns_to_idle(photo):
    clock = FakeClock()
    track = AvatarVideoTrack(FaceStream(photo, size=128), clock)
    twin = FaceStream(photo, size=128)  # what each frame should be
    speech = held_out_audio(1.2)
    start_at = 0.53  # the audio track plays the first sample then: frame 13 of the media clock
    done = track.speak(speech, start_at)
    resting = FaceStream(photo, size=128)  # idle before any speech
    idle = {n: resting.idle(pose=n) for n in range(13)}
    expected = dict(enumerate(twin.feed(speech, pose=13), start=13))
    # after the barge-in the photo's head settles from the liveliness the speech left, one idle frame at a time
    idle.update({n: twin.idle(pose=n) for n in range(35, 45)})
    assert await asyncio.wrap_future(done) == 30
    shown = []
    try:
        for n in range(45):
            if n == 35:
                track.interrupt()  # the person starts speaking while frame 34 is up
            shown.append(await _show(track, clock, n))
    finally:
        track.stop()
    pts = [p for p, _ in shown]
    assert pts == [n * 3600 for n in range(45)]  # 90 kHz, 25 fps, from the media clock
    kind = ["speech" if n in expected and np.array_equal(f, expected[n]) else
            "idle" if np.array_equal(f, idle[n]) else "other" for n, (_, f) in enumerate(shown)]
    assert kind[:13] == ["idle"] * 13
    assert kind[13:35] == ["speech"] * 22  # frame k of the answer at start_at + k / 25
    assert kind[35:] == ["idle"] * 10  # the barge-in: idle from the very next frame
    # the speech frames really differ from idle ones: the mouth moves
    assert sum(not np.array_equal(expected[n], resting.idle(pose=n)) for n in range(13, 35)) > 15


async def test_a_late_track_skips_to_the_frame_that_is_due(photo):
    clock = FakeClock()
    track = AvatarVideoTrack(FaceStream(photo, size=64), clock)
    try:
        first, _ = await _show(track, clock, 0)
        clock.t = 1.0  # the consumer fell behind by a second
        second = await track.recv()
        assert (first, second.pts) == (0, 25 * 3600)
    finally:
        track.stop()


async def test_before_the_audio_starts_the_face_idles_at_the_frame_rate_and_pts_keep_rising(photo):
    clock = FakeClock()
    clock.started = False  # no audio frame sent yet: media time has not begun
    track = AvatarVideoTrack(FaceStream(photo, size=64), clock)
    try:
        t0 = time.monotonic()
        early = [(await track.recv()).pts for _ in range(4)]
        assert time.monotonic() - t0 >= 3 / 25 - 0.01
        clock.started = True
        later = [(await _show(track, clock, n))[0] for n in range(3)]
        assert early + later == [k * 3600 for k in range(7)]
    finally:
        track.stop()


async def test_a_face_that_cannot_be_drawn_ends_the_track_instead_of_freezing_it():
    from aiortc.mediastreams import MediaStreamError

    class Broken:
        def idle(self, pose=None):
            raise RuntimeError("model file vanished")

    track = AvatarVideoTrack(Broken(), FakeClock())
    with pytest.raises(MediaStreamError, match="vanished"):
        await asyncio.wait_for(track.recv(), 5)
    assert track.readyState == "ended"


async def test_the_track_crosses_a_webrtc_connection_at_the_frame_rate(photo):
    clock = WallClock()
    track = AvatarVideoTrack(FaceStream(photo, size=256), clock)
    sender, receiver = RTCPeerConnection(), RTCPeerConnection()
    arrivals: list[float] = []
    got_track = asyncio.Event()

    async def consume(remote) -> None:
        while True:
            frame = await remote.recv()
            arrivals.append(time.monotonic())
            assert frame.width == 256

    tasks = []

    @receiver.on("track")
    def on_track(remote) -> None:
        tasks.append(asyncio.ensure_future(consume(remote)))
        got_track.set()

    try:
        sender.addTrack(track)
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        await asyncio.wait_for(got_track.wait(), 10)
        track.speak(held_out_audio(1.5), clock.now() + 0.3)
        deadline = time.monotonic() + 15
        while (len(arrivals) < 2 or arrivals[-1] - arrivals[0] < 2.0) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        first = arrivals[0]
        in_two_seconds = sum(1 for t in arrivals if t - first < 2.0)
        print(f"aiortc loopback: {in_two_seconds / 2:.1f} fps received")
        assert in_two_seconds >= 40  # at least 20 fps over 2 s
    finally:
        for task in tasks:
            task.cancel()
        await sender.close()
        await receiver.close()
        track.stop()
