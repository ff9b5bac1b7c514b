"""A voice that cannot be used does not stop the answers: they come in the standard voice with a note saying
why, the admin reads it once in the log, and `/voice default` goes back to what it says.

Before, `DOPPEL_VOICE=ghost` (no such voice) or a voice still training refused every voice message, and a
damaged lite voice file aborted the reply. The answers' words come from a fake OpenAI server (what is said is
not the point here, and it keeps each answer quick); everything else is the real bot, CLI and engines.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import pytest

from adapters.settings import Settings
from adapters.engines import Engines, build_chat_model
from bot.wiring import build_services
from core.types import VoiceEngine
from tests.conftest import ROOT
from tests.speech import speech_clips
from tests.fakes.llm_servers import FakeLLMServer
from tests.telegram_support import bot_settings, fake_tg, running_bot, texts_to  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow
USER = 521


def _clip() -> bytes:
    return speech_clips("en", 4.0)[0][0].read_bytes()


async def _unusable_voices(services, folder: Path) -> None:
    """'zed' still training; 'cracked' ready, but its trained file is damaged."""
    await services.voices.upsert("zed", VoiceEngine.LITE, "en", ready=False, params={"dir": str(folder / "zed")})
    cracked = folder / "cracked.lite.pt"
    cracked.write_bytes(b"PK\x03\x04 not a voice any more")
    await services.voices.upsert("cracked", VoiceEngine.LITE, "en", ready=True, params={"artifact": str(cracked)})


@pytest.fixture
async def fake_llm():
    async with FakeLLMServer("openai") as server:
        yield server


def _openai(server: FakeLLMServer) -> dict:
    return {"llm_provider": "openai", "openai_base_url": server.base_url, "openai_api_key": "test"}


def _with_llm(settings: Settings, engines: Engines) -> Engines:
    return Engines(recognizer=engines.recognizer, chat_model=build_chat_model(settings), synthesizers=engines.synthesizers,
                   converters=engines.converters, renderer=None, text_languages=engines.text_languages)


def _warnings(caplog, voice: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "doppel.pipeline" and f"'{voice}'" in r.getMessage()]


async def test_telegram_answers_in_the_standard_voice_when_the_voice_cannot_be_used(fake_tg, fake_llm, tmp_path, engines,
                                                                                    caplog):
    caplog.set_level(logging.WARNING, logger="doppel.pipeline")
    settings = bot_settings(tmp_path, fake_tg, voice="ghost", **_openai(fake_llm))
    async with running_bot(settings, _with_llm(settings, engines)) as (_app, services):
        await _unusable_voices(services, tmp_path)

        async def voice_message() -> str:
            """Send one; the notes sent with its answer, once its voice note has come."""
            voices, texts = len(fake_tg.sent_to(USER, "sendVoice")), len(texts_to(fake_tg, USER))
            fake_tg.voice_update(USER, _clip(), duration=5)
            await fake_tg.wait_for(lambda: len(fake_tg.sent_to(USER, "sendVoice")) > voices, 120)
            return "\n".join(texts_to(fake_tg, USER)[texts:])

        async def command(text: str) -> str:
            count = len(texts_to(fake_tg, USER))
            fake_tg.text_update(USER, text)
            await fake_tg.wait_for(lambda: len(texts_to(fake_tg, USER)) > count, 30)
            return texts_to(fake_tg, USER)[-1]

        # DOPPEL_VOICE names no voice: twice answered, the admin told once
        for _ in range(2):
            assert "There is no voice called 'ghost', so I answer in the standard voice" in await voice_message()
        assert len(_warnings(caplog, "ghost")) == 1

        assert "still training" in await command("/voice zed")
        assert "The voice 'zed' is not ready yet, so I answer in the standard voice" in await voice_message()

        assert "'cracked'" in await command("/voice cracked")
        said = await voice_message()
        assert "The voice 'cracked' could not be used" in said and "standard voice" in said

        # the chat's choice goes; the server's default cannot be used, and the reply says so instead of promising it
        assert await command("/voice default") == \
            "Back to the standard voice: this server's default voice 'ghost' does not exist."
        assert (await services.chats.get(f"tg:{USER}")).voice is None
        assert "no voice called 'ghost'" in await voice_message()


async def test_telegram_voice_default_names_the_voice_it_goes_back_to(fake_tg, tmp_path, engines):
    async with running_bot(bot_settings(tmp_path, fake_tg), engines) as (_app, services):
        await services.voices.upsert("anna", VoiceEngine.TTS, "en", ready=True)
        fake_tg.text_update(USER, "/voice anna")
        await fake_tg.wait_for(lambda: texts_to(fake_tg, USER), 30)
        fake_tg.text_update(USER, "/voice default")
        await fake_tg.wait_for(lambda: len(texts_to(fake_tg, USER)) >= 2, 30)
        assert texts_to(fake_tg, USER)[-1] == "Back to the standard voice."
        assert (await services.chats.get(f"tg:{USER}")).voice is None


async def test_cli_reply_answers_in_the_standard_voice_when_the_voice_cannot_be_used(tmp_path, fake_llm):
    services = await build_services(Settings(_env_file=None, data_dir=tmp_path / "var"))
    try:
        await _unusable_voices(services, tmp_path)
    finally:
        await services.close()
    out = tmp_path / "answer.ogg"
    env = {**os.environ, "DOPPEL_DATA_DIR": str(tmp_path / "var"), "DOPPEL_LLM_PROVIDER": "openai",
           "DOPPEL_OPENAI_BASE_URL": fake_llm.base_url, "DOPPEL_OPENAI_API_KEY": "test"}
    cases = [({"DOPPEL_VOICE": "ghost"}, (), "There is no voice called 'ghost'"),
             ({}, ("--voice", "zed"), "The voice 'zed' is not ready yet"),
             ({}, ("--voice", "cracked"), "The voice 'cracked' could not be used")]
    for extra, args, note in cases:
        out.unlink(missing_ok=True)
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "reply", "--text", "Hello there!", "--out", str(out), *args, cwd=ROOT,
            env={**env, **extra}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        said, err = (b.decode() for b in await asyncio.wait_for(cli.communicate(), 300))
        assert cli.returncode == 0, err[-2000:]
        assert f"note:     {note}" in said and "answer:   Hello there. How are you?" in said, said
        assert out.stat().st_size > 1000, "no voice answer was written"
        assert err.count("cannot be used") == 1, err  # the admin's line, once


async def test_discord_answers_in_the_standard_voice_and_voice_default_says_so(tmp_path, engines, fake_llm):
    from tests.fakes.discord_api import IS_VOICE_MESSAGE
    from tests.fakes.discord_bot import discord_world
    from tests.test_discord_bot import voice_upload

    settings = Settings(_env_file=None, data_dir=tmp_path / "unused", **_openai(fake_llm))
    async with discord_world(tmp_path, _with_llm(settings, engines), voice="ghost", **_openai(fake_llm)) as w:
        fake = w.fake
        dm = fake.dm_channel(w.alice)
        await fake.send_message(dm, w.alice, attachments=[voice_upload(speech_clips("en", 2.5)[0][0])],
                                flags=IS_VOICE_MESSAGE)
        await fake.wait_for(lambda m: m.by_bot and m.channel_id == dm and m.is_voice, 120)
        await fake.wait_for(lambda m: m.by_bot and m.channel_id == dm and "There is no voice called 'ghost'" in m.content)

        await fake.invoke("voice", w.admin, w.channel, name="default")
        said = await fake.wait_for(lambda m: m.by_bot and m.channel_id == w.channel)
        assert said.content == "Back to the standard voice: this server's default voice 'ghost' does not exist."
