"""adapters/video.py: frames + a real voice → MP4 (H.264 + AAC) that decodes back in sync, and the video-note form."""
from __future__ import annotations

import av
import io
import numpy as np
import pytest

from adapters.media import decode_audio
from adapters.video import encode_mp4, encode_video_note, read_frames, read_info, timed_cues, to_video_note
from core.errors import BadInput
from tests.speech import speech_clips


def _moving_square(n: int, h: int, w: int) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        f = np.full((h, w, 3), 40, np.uint8)
        f[20:60, 10 + 4 * i:50 + 4 * i] = (250, 30, 30)
        frames.append(f)
    return frames


def _streams(mp4: bytes) -> dict:
    with av.open(io.BytesIO(mp4)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        return {"v": v.codec_context.name, "a": a.codec_context.name, "w": v.codec_context.width,
                "h": v.codec_context.height, "v_s": float(v.duration * v.time_base), "a_s": float(a.duration * a.time_base)}


def test_mp4_has_h264_and_aac_in_sync_with_real_speech():
    path, _seconds, _ = speech_clips("en", 2.0)[0]
    voice = decode_audio(path.read_bytes())
    n = int(voice.seconds * 25)
    mp4 = encode_mp4(_moving_square(n, 120, 160), 25, voice)
    s = _streams(mp4)
    assert (s["v"], s["a"], s["w"], s["h"]) == ("h264", "aac", 160, 120)
    assert abs(s["v_s"] - n / 25) < 0.05
    assert abs(s["a_s"] - s["v_s"]) < 0.05  # the sound ends with the picture
    back = decode_audio(mp4)
    # the speech survives the AAC round trip: same loudness envelope as the input
    m = min(back.samples.size, voice.samples.size)
    env = lambda x: np.abs(x[: m // 400 * 400]).reshape(-1, 400).mean(1)
    assert np.corrcoef(env(back.samples), env(voice.samples))[0, 1] > 0.9
    frames = list(read_frames(mp4))
    assert len(frames) == n
    # the red square moved right as drawn
    cols = [np.where(f[40, :, 0] > 180)[0].mean() for f in (frames[0], frames[10])]
    assert cols[1] - cols[0] == pytest.approx(40, abs=3)


def test_video_note_is_square_small_and_capped_at_a_minute():
    frames = _moving_square(10, 240, 320)
    note = encode_video_note(frames, 25, None, side=512)
    info = read_info(note)
    assert (info.width, info.height) == (512, 512)
    with pytest.raises(BadInput):
        encode_video_note(frames, 25, side=640)
    # 62 s of tiny frames → cut at 60 s
    long = (np.zeros((32, 32, 3), np.uint8) for _ in range(62 * 10))
    assert read_info(encode_video_note(long, 10, side=32)).seconds <= 60.05


@pytest.mark.slow  # finds the face in every frame
def test_to_video_note_keeps_the_sound():
    path, _, _ = speech_clips("en", 2.0)[0]
    voice = decode_audio(path.read_bytes())
    mp4 = encode_mp4(_moving_square(int(voice.seconds * 25), 120, 160), 25, voice)
    note = to_video_note(mp4, side=256)
    s = _streams(note)
    assert (s["w"], s["h"], s["a"]) == (256, 256, "aac")


def test_a_video_note_is_framed_on_the_face():
    """A small face in a wide picture fills the circle, head and shoulders, instead of a centre crop of the scene."""
    from PIL import Image
    from skimage import data

    from geneface.landmarks import detect

    scene = np.full((360, 640, 3), 60, np.uint8)
    scene[30:330, 320:620] = np.asarray(Image.fromarray(data.astronaut()).resize((300, 300)))  # off to the right
    mp4 = encode_mp4([scene] * 30, 25)
    for framed, width in ((False, (0.0, 0.2)), (True, (0.3, 0.6))):
        frame = next(read_frames(to_video_note(mp4, side=256, frame_face=framed)))
        faces = detect(frame)
        assert len(faces) == 1 and width[0] <= faces[0].width / 256 <= width[1]
    x0, y0, x1, y1 = faces[0].box
    assert abs((x0 + x1) / 2 - 128) < 0.12 * 256 and abs((y0 + y1) / 2 - 128) < 0.12 * 256
    # no face: the centre square, as before
    blank = encode_mp4([np.full((120, 160, 3), 90, np.uint8)] * 10, 25)
    assert read_info(to_video_note(blank, side=64)).width == 64


def test_burned_subtitles_change_the_bottom_of_the_frame_only():
    frames = [np.full((120, 160, 3), 90, np.uint8)] * 25
    mp4 = encode_mp4(frames, 25, cues=timed_cues("hello there, general", 1.0))
    first = next(read_frames(mp4)).astype(int)
    assert np.abs(first[:60] - 90).max() < 12  # top half untouched (up to codec noise)
    assert np.abs(first[70:] - 90).max() > 100  # white/black caption pixels below
    cues = timed_cues("one two three four five six seven eight nine ten eleven twelve", 6.0, max_chars=20)
    assert cues[0].start == 0 and cues[-1].end == pytest.approx(6.0)
