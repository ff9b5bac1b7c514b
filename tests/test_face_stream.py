"""Live talk's face: speech fed a sentence at a time gives the frames the whole answer would, without drift or seams.

Real speech drives the photo engine (the astronaut portrait) and the lite engine (a tiny model trained
here on a generated talking clip, as in test_lite_avatar).
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.types import Audio
from geneface.intake import IntakeRules, load_footage
from geneface.lite import artifact
from geneface.lite.data import mel_filters, prepare
from geneface.lite.model import TINY
from geneface.lite.render import LiteAvatar
from geneface.lite.stream import LOG_FLOOR, LiteDriver
from geneface.lite.train import Trainer
from geneface.photo import PhotoAvatar
from geneface.stream import FaceStream, Tail
from geneface.testclip import portrait
from geneface.warp import loudness_track
from tests.avatar_clips import held_out_audio, training_mp4

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lite(tmp_path_factory) -> LiteAvatar:
    footage = load_footage(training_mp4(), rules=IntakeRules(min_seconds=10))
    prepared = prepare(footage, TINY.size)
    trainer = Trainer(prepared, TINY, batch=16, lr=3e-3)
    trainer.run(150)
    folder = tmp_path_factory.mktemp("lite")
    artifact.save(folder, trainer.model, footage.idle, prepared)
    return LiteAvatar(folder)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> PhotoAvatar:
    path = tmp_path_factory.mktemp("photo") / "face.png"
    Image.fromarray(portrait(256)[0]).save(path)
    return PhotoAvatar(path)


def _pieces(audio: Audio, count: int, seed: int = 0) -> list[Audio]:
    cuts = np.sort(np.random.default_rng(seed).choice(np.arange(1, len(audio.samples)), count - 1, replace=False))
    return [Audio(audio.samples[a:b], audio.sample_rate) for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(audio.samples)])]


def _same_away_from_seams(stream_of, audio: Audio, pieces: int, size: int) -> None:
    whole = stream_of().feed(audio)
    streamed, seams = stream_of(), []
    parts: list[np.ndarray] = []
    for piece in _pieces(audio, pieces):
        parts += streamed.feed(piece)
        seams.append(len(parts))
    # exactly the frames that cover the audio at 25 fps, however it was cut: no drift
    assert len(parts) == len(whole) == int(np.ceil(audio.seconds * 25))
    assert max(whole[0].shape[:2]) == size and whole[0].dtype == np.uint8 and whole[0].shape[2] == 3
    # a frame whose lookahead stays inside its piece is the frame the whole audio gives: no seam
    reach = int(np.ceil(streamed.lookahead * 25)) + 1
    near = {k for s in seams for k in range(s - reach, s)}
    checked = [k for k in range(len(whole)) if k not in near]
    assert len(checked) >= len(whole) // 4
    for k in checked:
        assert np.abs(whole[k].astype(int) - parts[k].astype(int)).max() <= 2, k


def test_photo_face_fed_in_twenty_pieces_matches_the_whole(photo):
    _same_away_from_seams(lambda: FaceStream(photo, size=512), held_out_audio(1.6), 20, 512)


def test_lite_face_fed_in_twenty_pieces_matches_the_whole(lite):
    speech = held_out_audio(2.4)
    # 22.05 kHz, like Piper's speech: resampled a piece at a time onto the whole stream's 16 kHz grid
    from adapters.media import resample

    _same_away_from_seams(lambda: FaceStream(lite, size=256), resample(speech, 22_050), 20, 256)


def test_lite_features_are_the_training_features(lite):
    # the mel computed a piece at a time is Whisper's, which the network learnt from (data.mel)
    from geneface.lite.data import _extractor

    speech = held_out_audio(3.0)
    tail = Tail(16_000)
    tail.append(speech.samples)
    ours = LiteDriver(lite, 256)._raw(tail, 2, 290)
    theirs = _extractor()(speech.samples, padding=0).T[2:290]
    loud = theirs > (max(LOG_FLOOR, np.log10(1e-10)) + 4) / 4 + 0.3  # away from either floor
    assert loud.mean() > 0.3 and mel_filters().shape == (80, 201)
    assert np.abs(ours - theirs)[loud].max() < 1e-3


@pytest.mark.parametrize("engine", ["photo", "lite"])
def test_the_mouth_moves_with_speech_and_rests_in_silence(engine, request):
    face = FaceStream(request.getfixturevalue(engine), size=256)
    speech = held_out_audio(3.0)
    audio = Audio(np.concatenate([np.zeros(8000, np.float32), speech.samples]), 16_000)
    frames = face.feed(audio, pose=0)
    loud = loudness_track(audio, 25)[:len(frames)]
    # the first 0.4 s of the 0.5 s of silence (clear of the lookahead), and the loudest frames of the speech,
    # against a face that has not spoken yet (the photo's head moves more after speech, and settles)
    resting = FaceStream(request.getfixturevalue(engine), size=256)
    silent, spoken = list(range(10)), list(np.argsort(-loud)[:10])
    change = {k: np.abs(frames[k].astype(int) - resting.idle(pose=k).astype(int)) for k in silent + spoken}
    quiet = max(change[k].mean() for k in silent)
    assert quiet < 0.05
    assert min(change[k].mean() for k in spoken) > 5 * max(quiet, 0.05)
    if engine == "lite":  # only the lower face is redrawn: the top rows stay those of the idle loop
        top = frames[0].shape[0] // 4
        assert all(change[k][:top].max() == 0 for k in spoken)


def test_reset_starts_a_new_frame_count(photo):
    face = FaceStream(photo, size=128)
    speech = held_out_audio(1.0)
    assert len(face.feed(Audio(speech.samples[:7_000], 16_000))) == 11  # 0.4375 s: the cut-short frame is drawn
    face.reset()
    assert face.frames_made == 0 and face.seconds == 0.0
    assert len(face.feed(speech)) == 25


async def test_the_studio_hands_live_talk_a_face_for_a_ready_avatar(services):
    import io

    from bot.common.avatars import add_photo_avatar
    from core.errors import UnknownAvatar

    buf = io.BytesIO()
    Image.fromarray(portrait(256)[0]).save(buf, format="PNG")
    await add_photo_avatar(services, "astro", buf.getvalue())
    face = await services.renderer.face_stream("astro", size=services.settings.avatar_live_size)
    frames = face.feed(held_out_audio(0.5))
    assert len(frames) == 13 and frames[0].shape == (512, 512, 3)
    with pytest.raises(UnknownAvatar):
        await services.renderer.face_stream("nobody")
