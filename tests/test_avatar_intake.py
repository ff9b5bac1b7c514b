"""What an uploaded avatar video or photo must be, and the reasons given when it isn't; the photo engine talks at once."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from adapters.video import encode_mp4, read_frames, read_info
from core.errors import BadReference
from core.types import Audio, VideoFrame
from geneface import landmarks as lm
from geneface.intake import IntakeRules, check_video, load_footage
from geneface.photo import PhotoAvatar, check_photo
from geneface.testclip import portrait
from geneface.warp import loudness_track, mouth_inside, open_mouth
from tests.avatar_clips import held_out_audio, training_clip

RULES = IntakeRules(min_seconds=2.0)
pytestmark = pytest.mark.slow  # the face landmark model tracks every clip


def _video(frames, fps=25, audio=True) -> bytes:
    sound = Audio(np.zeros(int(len(frames) / fps * 16000), np.float32) + 0.01, 16000) if audio else None
    return encode_mp4(frames, fps, sound)


def _talking(n=60):
    return training_clip().frames[:n]


def test_a_good_clip_passes_and_is_tracked():
    clip = training_clip()
    measured = check_video(clip.mp4(), RULES)
    assert measured["face_share"] == 1.0 and measured["fps"] == 25 and measured["width"] == 256
    footage = load_footage(_video(_talking(75)), rules=RULES, idle_seconds=1.0)
    assert len(footage.points) == 75 and all(p is not None for p in footage.points)
    assert len(footage.idle) == 25


@pytest.mark.parametrize("case, reason", [
    ("low_fps", "12 frames per second"),
    ("small", "at least 256 px"),
    ("silent", "has no sound"),
    ("no_face", "can't find a face"),
    ("two_faces", "more than one face"),
    ("tiny_face", "face is too small"),
])
def test_bad_videos_are_refused_with_the_reason(case, reason):
    frames = _talking(60)
    if case == "low_fps":
        data = _video(frames[::2], fps=12)
    elif case == "small":
        data = _video([f[::2, ::2].copy() for f in frames])
    elif case == "silent":
        data = _video(frames, audio=False)
    elif case == "no_face":
        data = _video([np.roll(f, 128, axis=0)[:, ::-1].copy() * 0 + f.mean((0, 1)).astype(np.uint8) for f in frames])
    elif case == "two_faces":
        data = _video([np.concatenate([f[:, 64:192], f[:, 64:192]], axis=1) for f in frames])
    else:
        data = _video([np.asarray(Image.fromarray(np.pad(f, ((384, 384), (384, 384), (0, 0)), mode="edge"))
                                  .resize((512, 512))) for f in frames[:60]])
    with pytest.raises(BadReference, match=reason):
        check_video(data, RULES)


def test_photo_checks():
    with pytest.raises(BadReference, match="could not read"):
        check_photo(b"not a picture")
    blank = io.BytesIO()
    Image.new("RGB", (300, 300), (120, 140, 160)).save(blank, format="PNG")
    with pytest.raises(BadReference, match="can't find a face"):
        check_photo(blank.getvalue())


def _scene(face_at: tuple[int, int], face_px: int, size: tuple[int, int] = (1600, 1200)) -> bytes:
    """A wide photo (grey room) with the astronaut's head and shoulders pasted at `face_at`, `face_px` across."""
    from skimage import data

    w, h = size
    scene = Image.new("RGB", (w, h), (96, 100, 104))
    person = Image.fromarray(data.astronaut()).resize((face_px, face_px), Image.LANCZOS)
    scene.paste(person, (face_at[0] - face_px // 2, face_at[1] - face_px // 2))
    buf = io.BytesIO()
    scene.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def _cnn_face_height(frame: np.ndarray) -> float:
    """Face height over frame height by dlib's CNN detector: not the HOG detector the framing itself uses."""
    import dlib

    found = dlib.cnn_face_detection_model_v1(str(lm._models_dir() / "mmod_human_face_detector.dat"))(frame, 0)
    assert len(found) == 1
    return found[0].rect.height() / frame.shape[0]


def test_a_small_face_in_a_wide_photo_is_framed_head_and_shoulders():
    framed = check_photo(_scene((800, 600), 700))
    assert framed.shape == (512, 512, 3)
    assert _cnn_face_height(framed) >= 0.45  # the face was a tenth of the photo's height
    faces = lm.detect(framed)
    x0, y0, x1, y1 = faces[0].box
    assert abs((x0 + x1) / 2 - 256) < 40 and abs((y0 + y1) / 2 - 256) < 60


def test_photos_that_cannot_be_framed_are_refused_with_the_reason():
    with pytest.raises(BadReference, match="too near the edge"):
        check_photo(_scene((1600, 600), 700))  # the face at the right edge: framing it would put it off the middle
    with pytest.raises(BadReference, match="face is too small"):
        check_photo(_scene((320, 240), 250, size=(640, 480)))  # about 50 px brows to chin


def test_an_old_unframed_photo_is_framed_when_loaded(tmp_path):
    path = tmp_path / "old.png"
    Image.open(io.BytesIO(_scene((800, 600), 700))).resize((800, 600)).save(path)  # kept as it came, 800 px
    avatar = PhotoAvatar(path)
    assert avatar.image.shape == (512, 512, 3)
    assert _cnn_face_height(avatar.frame(0.0, 0)) >= 0.45


def test_photo_engine_mouth_follows_the_speech(tmp_path):
    base, _ = portrait(256)
    path = tmp_path / "photo.png"
    Image.fromarray(base).save(path)
    speech = held_out_audio(6.0)
    mp4 = PhotoAvatar(path).render(speech, "hello there", subtitles=True)
    info = read_info(mp4)
    assert info.has_audio and abs(info.seconds - speech.seconds) < 0.1
    frames = list(read_frames(mp4))
    opening = lm.opening_series(frames)
    drive = loudness_track(speech, 25)[:len(frames)]
    assert np.corrcoef(opening, drive)[0, 1] > 0.8


def test_the_open_mouth_has_teeth_and_shading_lit_like_the_face():
    base, pts = portrait(256)
    mouth_w = float(np.linalg.norm(pts[54] - pts[48]))
    u, depth = np.meshgrid(np.linspace(-0.95, 0.95, 61), np.linspace(0, 0.999, 41))
    opening = np.full_like(u, 0.45 * mouth_w)
    lum = mouth_inside(base, pts, u, depth, opening, mouth_w).mean(-1)
    teeth, inside = lum[:4, 25:36].mean(), lum[16:26, 25:36].mean()
    assert teeth > 150 and teeth > 3 * inside  # upper teeth over a dark inside, not one dark hole
    assert teeth > 1.3 * lum[:4, :3].mean()  # teeth recede into shade towards the corners
    assert lum[10:38, 10:51].std() > 6  # the inside is shaded (rim, tongue), not one flat colour
    dim = (base * 0.5).astype(np.uint8)
    assert mouth_inside(dim, pts, u, depth, opening, mouth_w).mean(-1)[:4, 25:36].mean() < 0.75 * teeth
    # in the frame: the lips are kept and the gap between them holds both teeth and shadow
    opened = open_mouth(base, pts, 0.8).astype(np.float32)
    gap = opened[int(pts[62, 1]):int(pts[66, 1] + 0.3 * mouth_w), int(pts[60, 0]):int(pts[64, 0])].mean(-1)
    assert (gap > 170).mean() > 0.08 and (gap < 70).mean() > 0.15
    assert np.abs(opened[int(pts[51, 1]) - 2, int(pts[51, 0])] - base[int(pts[51, 1]) - 2, int(pts[51, 0])]).max() < 1


async def test_a_photo_avatar_answers_with_video_through_the_pipeline(services):
    from bot.common.avatars import add_photo_avatar
    from bot.common.dialogue import Dialogue, Incoming

    base, _ = portrait(256)
    buf = io.BytesIO()
    Image.fromarray(base).save(buf, format="JPEG")
    avatar = await add_photo_avatar(services, "astro", buf.getvalue())
    assert avatar.ready and avatar.engine == "photo"
    assert await services.renderer.is_ready("astro")
    services.settings.avatar = "astro"
    frames = [f async for f in Dialogue(services).reply(Incoming("tg:1", "tg:1", text="Say hello in one sentence."))]
    video = [f for f in frames if isinstance(f, VideoFrame)]
    assert len(video) == 1
    info = read_info(video[0].mp4)
    assert info.has_audio and abs(info.seconds - video[0].seconds) < 0.1 and info.width == 512  # framed, 512 px
