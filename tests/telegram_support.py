"""Running the real Telegram bot (aiogram) against the fake Bot API server, for the test_telegram_* stories."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import pytest

from adapters.settings import Settings
from bot.telegram.app import TelegramBot
from bot.wiring import Services, build_services
from tests.fakes.telegram_api import FakeTelegram

ADMIN = 1
BRIEF_PERSONA = '''name = "brief"
language = "en"
max_sentences = 1
max_tokens = 32
system_prompt = """
You are a friendly person answering a voice message. Answer in one short, simple sentence.
"""
'''


@pytest.fixture
async def fake_tg() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def bot_settings(tmp_path: Path, fake: FakeTelegram, **overrides) -> Settings:
    """A bot on the fake server with a one-sentence persona, so each test's model work stays small."""
    personas = tmp_path / "personas"
    personas.mkdir(exist_ok=True)
    (personas / "brief.toml").write_text(BRIEF_PERSONA, encoding="utf-8")
    values = dict(data_dir=tmp_path / "var", telegram_token=fake.token, telegram_api_url=fake.base_url,
                  admin_ids=[ADMIN], personas_dir=personas, persona="brief", telegram_poll_timeout=2,
                  rate_limit_per_minute=0, telegram_progress_interval=0.1)
    values.update(overrides)
    return Settings(_env_file=None, **values)


@asynccontextmanager
async def running_bot(settings: Settings, engines) -> AsyncIterator[tuple[TelegramBot, Services]]:
    services = await build_services(settings, engines=engines)
    app = TelegramBot(services)
    task = asyncio.create_task(app.run())
    try:
        yield app, services
    finally:
        app.stop()
        try:
            await asyncio.wait_for(task, 60)
        finally:
            await services.close()


def texts_to(fake: FakeTelegram, chat_id: int) -> list[str]:
    return [s.text for s in fake.sent_to(chat_id, "sendMessage")]
