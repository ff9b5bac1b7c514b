"""Two admins adding recordings to one voice at the same moment: every recording is kept, under its own name,
with its own transcript (both once wrote clip-000…003: 8 rows pointed at 4 files)."""
from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from adapters.media import decode_audio
from bot.common.voices import add_voice
from tests.speech import speech_clips

pytestmark = pytest.mark.slow


async def test_two_adds_to_one_new_voice_at_once_keep_all_eight_recordings(services):
    clips = [(p.name, p.read_bytes()) for p, _, _ in speech_clips("en", 4.0)[:8]]
    first, second = clips[:4], clips[4:]
    texts = [f"recording {i}" for i in range(8)]
    await asyncio.gather(add_voice(services, "zed", first, texts[:4]), add_voice(services, "zed", second, texts[4:]))

    rows = await services.voices.clips("zed")
    files = sorted((services.settings.data_dir / "voices" / "zed").glob("clip-*.wav"))
    assert len(rows) == 8 and len({r.path for r in rows}) == 8 and len(files) == 8
    expected = {text: decode_audio(data) for text, (_, data) in zip(texts, clips)}
    for row in rows:
        path = Path(row.path)
        kept, sent = decode_audio(path.read_bytes()), expected[row.transcript]
        assert kept.samples.shape == sent.samples.shape, f"{path.name} does not hold '{row.transcript}'"
        assert np.abs(kept.samples - sent.samples).max() < 0.01, f"{path.name} does not hold '{row.transcript}'"
        assert path.with_suffix(".txt").read_text(encoding="utf-8").strip() == row.transcript
    assert {r.transcript for r in rows} == set(texts)
