"""The lite engine learns one person's lip-sync from a video and drives it with speech it never heard.

A generated talking clip (the astronaut photo, mouth opened by a real recording's loudness) trains a tiny
configuration on CPU; another recording's speech is then rendered, and the mouth opening that dlib's
landmarks measure on the rendered frames must follow that speech's own loudness signal.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from adapters.video import read_frames, read_info
from geneface import landmarks as lm
from geneface.intake import IntakeRules, load_footage
from geneface.lite import artifact
from geneface.lite.data import prepare
from geneface.lite.model import TINY
from geneface.lite.render import LiteAvatar
from geneface.lite.train import Trainer
from geneface.warp import loudness_track
from tests.avatar_clips import held_out_audio, training_clip, training_mp4

pytestmark = pytest.mark.slow


def test_generated_clip_mouth_follows_its_speech():
    clip = training_clip()
    measured = lm.opening_series(clip.frames[::2])
    assert np.isnan(measured).sum() == 0
    assert np.corrcoef(measured, clip.opening[::2])[0, 1] > 0.9
    assert clip.opening.max() > 0.9 and clip.opening.min() < 0.1


def test_lite_lip_sync_follows_held_out_speech(tmp_path):
    t0 = time.process_time()
    footage = load_footage(training_mp4(), rules=IntakeRules(min_seconds=10))
    prepared = prepare(footage, TINY.size)
    trainer = Trainer(prepared, TINY, batch=16, lr=3e-3)
    losses = []
    trainer.run(300, report_every=50, on_progress=lambda step, loss, _: losses.append(loss))
    assert losses[-1] < losses[0] * 0.9
    artifact.save(tmp_path / "lite", trainer.model, footage.idle, prepared)
    trained = time.process_time() - t0

    avatar = LiteAvatar(tmp_path / "lite")
    speech = held_out_audio(8.0)
    mp4 = avatar.render(speech, "hello", subtitles=False)
    info = read_info(mp4)
    assert info.has_audio and abs(info.seconds - speech.seconds) < 0.1
    frames = list(read_frames(mp4))
    opening = lm.opening_series(frames)
    drive = loudness_track(speech, 25)[:len(frames)]
    assert np.isnan(opening).mean() < 0.05
    ok = ~np.isnan(opening)
    r = np.corrcoef(opening[ok], drive[ok])[0, 1]
    print(f"lite: held-out mouth correlation {r:.3f}; prepare+train {trained:.0f} s CPU")
    assert r >= 0.8
