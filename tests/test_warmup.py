"""Warm at start: every configured engine is loaded and exercised before a channel takes its first message."""
from __future__ import annotations

import logging

import pytest

from adapters.settings import Settings
from bot.common.warmup import ready
from bot.wiring import build_engines, build_services


@pytest.mark.slow
async def test_every_engine_is_loaded_before_the_channel_says_it_is_ready(tmp_path, caplog):
    settings = Settings(_env_file=None, data_dir=tmp_path / "var", asr_multilingual=False)
    engines = build_engines(settings)  # fresh: nothing loaded yet
    services = await build_services(settings, engines=engines)
    recognizer, [llm], piper = engines.recognizer, engines.chat_model.chain, engines.synthesizers[0]
    try:
        assert (recognizer._models, llm._llm, piper._voice) == ({}, None, None)
        with caplog.at_level(logging.INFO, logger="doppel.ready"):
            await ready(services, "web")
    finally:
        await services.close()
        await engines.close()
    assert set(recognizer._models) == {"en"}
    assert llm._llm is not None and piper._voice is not None
    lines = [r.getMessage() for r in caplog.records if r.name == "doppel.ready"]
    assert lines[0] == "web: warming the engines ..."
    assert lines[-1].startswith("web: ready, engines warmed in ")
