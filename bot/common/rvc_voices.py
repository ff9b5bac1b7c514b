"""Registering an RVC voice from an admin's files: checked in full before anything is kept.

The model is read with the safe loader (RVC/safe_load.py) and its version, sample rate and tensors checked;
then the voice worker that will serve it converts a test sentence with the new files and settings. Only when
all of that succeeds are the files moved to their place in the models folder and the voice stored, ready.
"""
from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.wiring import Services
from core.errors import BadInput, DoppelError
from core.types import Voice, VoiceEngine

_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
TEST_SENTENCE = "Hello, this is a short test of my new voice."
INDEX_SUFFIXES = (".index", ".npy")


@dataclass(frozen=True)
class RegisteredRvc:
    voice: Voice
    version: str
    sample_rate: int
    speakers: int
    test_seconds: float  # how long the converted test sentence was


def _models_dir(services: Services) -> Path:
    return Path(services.settings.rvc_models_dir)


async def add_rvc_voice(services: Services, name: str, model: tuple[str, bytes], index: tuple[str, bytes] | None = None,
                        settings: dict | None = None, *, language: str = "en") -> RegisteredRvc:
    """model and index are (file name, content) as uploaded; settings: pitch_shift, f0_method, index_rate,
    protect, rms_mix_rate, speaker_id. A refusal raises BadInput and leaves nothing behind."""
    from RVC.engines.rvc import RvcParams
    from RVC.rvc_model import load_checkpoint

    if not _NAME.match(name):
        raise BadInput("A voice name may use letters, digits, '-' and '_' (up to 64).")
    if name in await services.voices.names():
        raise BadInput(f"There is already a voice called '{name}'; choose another name.")
    model_name, model_bytes = model
    if not model_name.lower().endswith(".pth"):
        raise BadInput("The RVC model must be the .pth file RVC exported (its weights folder).")
    if index is not None and not index[0].lower().endswith(INDEX_SUFFIXES):
        raise BadInput("The retrieval index must be RVC's .index file (or its features as .npy).")
    folder = _models_dir(services)
    folder.mkdir(parents=True, exist_ok=True)
    final_model = folder / f"{name}.pth"
    final_index = folder / f"{name}{Path(index[0]).suffix.lower()}" if index is not None else None
    if final_model.exists() or (final_index is not None and final_index.exists()):
        raise BadInput(f"RVC files named '{name}' are already in the models folder; choose another name.")

    # the upload waits inside the models folder (which a docker worker sees too) until it has passed every check
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=folder))
    try:
        staged_model = staging / f"{name}.pth"
        # up to hundreds of MB: written off the event loop, which keeps answering everyone meanwhile
        await asyncio.to_thread(staged_model.write_bytes, model_bytes)
        staged_index = None
        if index is not None:
            staged_index = staging / f"{name}{Path(index[0]).suffix.lower()}"
            await asyncio.to_thread(staged_index.write_bytes, index[1])
        # paths relative to the models folder: that is how a worker in a container finds them too
        params = RvcParams.from_params({**(settings or {}), "model": str(staged_model.relative_to(folder)),
                                        "index": str(staged_index.relative_to(folder)) if staged_index else ""})
        try:
            _net, info = await asyncio.to_thread(load_checkpoint, staged_model)
        except DoppelError as exc:
            raise BadInput(exc.message, detail=exc.detail) from None
        if params.speaker_id >= info.speakers:
            raise BadInput(f"This model has speaker ids 0 to {info.speakers - 1}; {params.speaker_id} is not one of them.")
        seconds = await _test_conversion(services, Voice(name, VoiceEngine.RVC, language, False, params.to_params()),
                                         info.sample_rate)
        staged_model.replace(final_model)
        if staged_index is not None and final_index is not None:
            staged_index.replace(final_index)
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, True)

    kept = RvcParams(**{**params.__dict__, "model": final_model.name, "index": final_index.name if final_index else ""})
    try:
        voice = await services.voices.upsert(name, VoiceEngine.RVC, language, ready=True, params=kept.to_params())
    except BaseException:
        final_model.unlink(missing_ok=True)
        if final_index is not None:
            final_index.unlink(missing_ok=True)
        raise
    return RegisteredRvc(voice, info.version, info.sample_rate, info.speakers, seconds)


async def _test_conversion(services: Services, voice: Voice, sample_rate: int) -> float:
    """What will serve the voice (the voice worker, or the Ray replicas) speaks a test sentence in it; any failure
    is the admin's refusal."""
    converter = services.converters.get(VoiceEngine.RVC)
    if converter is None:
        raise BadInput("This server has no voice worker for RVC voices.")
    try:
        audio = await converter.preview(voice, TEST_SENTENCE)
    except DoppelError as exc:
        raise BadInput(f"The test sentence could not be converted: {exc.message}", detail=exc.detail) from None
    if audio.samples.size == 0 or not np.isfinite(audio.samples).all():
        raise BadInput("The test sentence came out empty or broken; the model does not work with these settings.")
    if audio.sample_rate != sample_rate:
        raise BadInput(f"The model says {sample_rate} Hz but its audio came out at {audio.sample_rate} Hz.")
    if float(np.sqrt(np.mean(np.square(audio.samples)))) < 1e-4:
        raise BadInput("The test sentence came out silent; the model does not work with these settings.")
    return audio.samples.size / audio.sample_rate


def parse_settings(words: list[str]) -> dict:
    """`pitch=3 f0=harvest index_rate=0.6 protect=0.33 rms_mix=0.25 speaker=0` (how the bots take settings)."""
    names = {"pitch": "pitch_shift", "pitch_shift": "pitch_shift", "f0": "f0_method", "f0_method": "f0_method",
             "index_rate": "index_rate", "protect": "protect", "rms_mix": "rms_mix_rate", "rms_mix_rate": "rms_mix_rate",
             "speaker": "speaker_id", "speaker_id": "speaker_id"}
    out: dict = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or key.lower() not in names or not value:
            raise BadInput(f"'{word}' is not a setting; use pitch=N f0=harvest|yin|pyin index_rate=0..1 "
                           "protect=0..0.5 rms_mix=0..1 speaker=N.")
        out[names[key.lower()]] = value
    return out
