"""Warm at start: every configured engine is loaded and exercised before a channel takes its first message."""
from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import replace

import pytest

from adapters.settings import Settings
from bot.common.warmup import ready, serve_while_warming
from bot.wiring import build_engines, build_services
from tests.telegram_support import bot_settings, fake_tg  # noqa: F401  (fixture)


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


class HeldWarmUp:
    """The configured chat model, whose warm-up waits for the test to let it finish: a slow start made visible."""

    def __init__(self, inner, gate: threading.Event) -> None:
        self.inner = inner
        self.gate = gate

    def warm_up(self) -> None:
        assert self.gate.wait(600), "the test never let the warm-up finish"
        getattr(self.inner, "warm_up", lambda: None)()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


@pytest.mark.slow
async def test_telegram_takes_a_message_while_warming_shows_it_is_busy_and_answers_once_warm(fake_tg, tmp_path, engines):
    from bot.telegram.app import TelegramBot

    user = 4242
    gate = threading.Event()
    services = await build_services(bot_settings(tmp_path, fake_tg),
                                    engines=replace(engines, chat_model=HeldWarmUp(engines.chat_model, gate)))
    app = TelegramBot(services)
    running = asyncio.create_task(serve_while_warming(services, "telegram", app.run))
    try:
        fake_tg.text_update(user, "Hello there, how are you?")
        await fake_tg.wait_for(lambda: fake_tg.sent_to(user, "sendChatAction"), 60)
        answered_while_warming = [s.text for s in fake_tg.sent_to(user, "sendMessage")]
        still_warming = services.warming is not None and not services.warming.done()
        gate.set()
        answer = await fake_tg.wait_for(lambda: fake_tg.sent_to(user, "sendMessage"), 600)  # the whole warm-up first
    finally:
        gate.set()
        app.stop()
        await asyncio.wait_for(running, 60)
        await services.close()
    assert still_warming and answered_while_warming == []
    assert answer[0].text.strip()
