"""Generated talking clips for the avatar tests, made once per test session and kept in a temp folder."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from tests.speech import speech_clip

# different recordings for training and for the held-out check
TRAIN_CLIPS = ("demo-congrats", "conf-adminmenu")
HELD_OUT_CLIP = "demo-echotest"


@lru_cache(maxsize=4)
def training_clip(seconds: float = 22.0):
    from geneface.testclip import make_clip, speech

    audio = speech([speech_clip("en", n) for n in TRAIN_CLIPS], seconds=seconds)
    return make_clip(audio, seed=1)


@lru_cache(maxsize=4)
def training_mp4(seconds: float = 22.0) -> bytes:
    return training_clip(seconds).mp4()


def held_out_audio(seconds: float = 8.0):
    from geneface.testclip import speech

    return speech([speech_clip("en", HELD_OUT_CLIP)], seconds=seconds)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
