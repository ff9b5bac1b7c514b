"""`make demo`'s path: the shipped question answered in the shipped demo voice, with the shipped face talking."""
import os
import subprocess
import sys

import numpy as np
import pytest

from adapters.media import decode_audio
from adapters.wer import normalize
from RVC.features import f0_yin
from tests.conftest import ROOT

# what Allison Smith says in assets/question.ogg (assets/README.md)
QUESTION = "Something is terribly wrong. Weasels have eaten our phone system."


def _envelope(x: np.ndarray, hop: int = 320) -> np.ndarray:
    n = len(x) // hop
    return np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(axis=1))


@pytest.mark.slow
def test_the_demo_answers_in_the_demo_voice_with_a_video_of_the_same_speech(tmp_path):
    voice, video = tmp_path / "out" / "demo-reply.ogg", tmp_path / "out" / "demo-reply.mp4"
    env = {**os.environ, "DOPPEL_DATA_DIR": str(tmp_path / "var")}
    out = subprocess.run([sys.executable, "-m", "bot.cli", "reply", "--demo", "--audio", "assets/question.ogg",
                          "--user", "demo", "--out", str(voice), "--video", str(video)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    heard_said = next(line for line in out.stdout.splitlines() if line.startswith("you said: "))
    assert normalize(heard_said.removeprefix("you said: ").rsplit("  [", 1)[0]) == normalize(QUESTION), out.stdout
    # the models' first load is done before the question is taken, and printed apart from its timings
    assert any(line.startswith("warm-up: ") for line in out.stdout.splitlines()), out.stdout
    assert f"voice:    {voice}" in out.stdout and f"video:    {video}" in out.stdout, out.stdout

    spoken = decode_audio(voice.read_bytes()).samples
    heard = decode_audio(video.read_bytes()).samples  # the video's AAC track
    assert abs(len(spoken) - len(heard)) / 16000 < 0.3
    # the same speech: loudness envelopes line up (at the best offset within 0.2 s)
    a, b = _envelope(spoken), _envelope(heard)
    n = min(len(a), len(b)) - 20
    best = max(np.corrcoef(a[10:10 + n], b[10 + k:10 + k + n])[0, 1] for k in range(-10, 11))
    assert best > 0.9, best
    # and it is the demo voice (a woman's) speaking, not the base TTS (a man's, around 110 Hz)
    f0 = f0_yin(spoken)
    assert np.median(f0[f0 > 0]) > 150

    # a second run finds the demo already installed and answers the same way
    again = subprocess.run([sys.executable, "-m", "bot.cli", "reply", "--demo", "--text", "Hello!", "--user", "demo",
                            "--out", str(tmp_path / "again.ogg")], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0 and (tmp_path / "again.ogg").stat().st_size > 0, again.stderr
