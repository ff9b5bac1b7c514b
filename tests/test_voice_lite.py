"""The lite engine from the admin's side: bad recordings refused up front; good ones trained by the job, then spoken."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from adapters.media import encode_wav
from bot.common.voices import add_voice
from bot.worker import Worker
from core.errors import BadReference
from core.types import Audio, JobStatus, VoiceEngine
from RVC.engines.lite import LiteEngine
from RVC.features import bundled_content
from tests.conftest import ROOT
from tests.speech import speech_clips


def _wav(samples: np.ndarray, rate: int = 16000) -> tuple[str, bytes]:
    return ("clip.wav", encode_wav(Audio(samples.astype(np.float32), rate)))


def _music(seconds: float = 8.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    chord = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (220, 277, 330))
    return chord * (0.5 + 0.5 * np.sign(np.sin(2 * np.pi * 2 * t)))


def _decoded(lang: str, n: int) -> list[np.ndarray]:
    from adapters.media import decode_audio

    return [decode_audio(p.read_bytes()).samples for p, _, _ in speech_clips(lang, 4.0)[:n]]


@pytest.mark.parametrize("case", ["silent", "clipped", "music", "two speakers", "too short"])
async def test_bad_reference_is_refused_before_anything_is_stored(services, case):
    en = _decoded("en", 3)
    files = {
        "silent": [_wav(np.random.default_rng(0).normal(0, 1e-5, 16000 * 5))],
        "clipped": [_wav(np.clip(en[0] * 10, -1, 1))],
        "music": [_wav(_music())],
        "two speakers": [_wav(x) for x in en + _decoded("fr", 3)],
        "too short": [_wav(en[0][:16000])],
    }[case]
    with pytest.raises(BadReference) as err:
        await add_voice(services, "bad", files, ["words"] * len(files))
    assert err.value.message and err.value.code == "bad_reference"
    assert "bad" not in await services.voices.names()
    assert not (services.settings.data_dir / "voices" / "bad").exists()
    assert await services.jobs.list() == []


async def test_one_speaker_passes_the_checks(services):
    added = await add_voice(services, "allison", [_wav(x) for x in _decoded("en", 4)], ["t"] * 4)
    assert added.job is not None and added.job.status is JobStatus.QUEUED


@pytest.mark.slow
async def test_a_voice_that_learned_nothing_is_refused_by_the_quality_gate_and_never_marked_ready(services, monkeypatch):
    # the tiny profile trains a few steps: its voice is noise, the kind a user must never be sent
    monkeypatch.setenv("DOPPEL_VOICE_TRAIN_PROFILE", "tiny")
    clips = [(p.name, p.read_bytes()) for p, _, _ in speech_clips("en", 3.0)[:4]]
    added = await add_voice(services, "allison", clips, ["a"] * len(clips))
    worker = Worker(services.jobs, services.settings.data_dir, kinds=["voice"])
    job = await worker.run_once()
    assert job.status is JobStatus.FAILED and added.job.id == job.id
    assert "did not pass the quality check" in job.message and "similarity" in job.message and "WER 100%" in job.message
    assert "GPU" in job.message and "Record more" in job.message
    assert job.step > 0 and "quality: similarity" in job.log_tail
    from bot.common.progress import describe

    assert "failed. The voice did not pass the quality check (similarity" in describe(job)  # the bots' job status

    voice = await services.voices.get("allison")
    assert not voice.ready and voice.engine is VoiceEngine.LITE
    quality = voice.params["quality"]
    assert quality["passed"] is False and quality["artifact"] == "lite-v1.pt" and quality["wer"] == 1.0
    assert quality["base_wer"] < 0.15 and quality["sentences"] >= 8
    assert quality["held_apart"] is False  # four clips: too few to keep any out of training
    assert "artifact" not in voice.params  # nothing points the pipeline at it

    # the admin sees the scores wherever the voice is listed
    from bot.common.voices import quality_summary

    assert quality_summary(voice).startswith("Quality check failed (lite-v1.pt): similarity ")
    env = {**os.environ, "DOPPEL_DATA_DIR": str(services.settings.data_dir)}
    listed = subprocess.run([sys.executable, "-m", "bot.cli", "voices", "list"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if x.startswith("voice allison:"))
    assert "not ready" in line and "Quality check failed" in line

    # the artifact itself is sound: a fresh engine loads it and converts (what it says is the gate's business)
    speech = await services.synthesizers[0].synthesize("Hello, this is my voice now.", "en")
    fresh = LiteEngine(bundled_content(services.settings.cache_dir))
    artifact = services.settings.data_dir / "voices" / "allison" / "lite-v1.pt"
    out, rate = fresh.convert(speech.samples, speech.sample_rate, {"artifact": str(artifact)})
    assert rate == 16000 and np.isfinite(out).all()


async def test_a_damaged_lite_artifact_is_a_clear_error(services, tmp_path):
    from core.errors import EngineError
    from core.types import Voice

    bad = tmp_path / "lite-v1.pt"
    bad.write_bytes(b"nope")
    voice = Voice("x", VoiceEngine.LITE, params={"artifact": str(bad)})
    speech = Audio(np.zeros(16000, np.float32) + 0.01, 16000)
    with pytest.raises(EngineError, match=r"lite-v1\.pt"):
        await services.converters[VoiceEngine.LITE].convert(speech, voice)
