"""Telegram under trouble: failed sends are retried one by one (never a second answer), the poller does not
spin while an answer is running, and a burst of bad messages gets a few error replies, not one each."""
from __future__ import annotations

import asyncio

from adapters.engines import Engines, build_chat_model
from adapters.settings import Settings
from tests.fakes.llm_servers import FakeLLMServer, Reply
from tests.telegram_support import bot_settings, fake_tg, running_bot, texts_to  # noqa: F401 - a pytest fixture, requested by name
from tests.test_llm_providers import KEYS

USER = 4242
ANSWER = ["The sea is wide.", " It is also", " very deep."]


def _engines_with_llm(engines, base_url: str, tmp_path) -> Engines:
    llm = Settings(_env_file=None, data_dir=tmp_path / "llm", llm_provider="openai", llm_model="gpt-test-mini",
                   openai_base_url=base_url, openai_api_key=KEYS["openai"], llm_retries=0)
    return Engines(recognizer=engines.recognizer, chat_model=build_chat_model(llm), synthesizers=engines.synthesizers,
                   converters={}, renderer=None)


async def test_failed_sends_are_retried_alone_and_the_answer_is_made_once(fake_tg, tmp_path, engines):
    async with FakeLLMServer("openai", [Reply(pieces=ANSWER)]) as llm:
        mine = _engines_with_llm(engines, llm.base_url, tmp_path)
        # the first sentence goes out as a message, the rest as an edit of it: the edit meets flood control, then a 5xx
        fake_tg.fail("editMessageText", 429, retry_after=1)
        fake_tg.fail("editMessageText", 500)
        try:
            async with running_bot(bot_settings(tmp_path, fake_tg, persona="default"), mine):
                fake_tg.text_update(USER, "Tell me about the sea.")
                await fake_tg.wait_for(lambda: fake_tg.sent_to(USER, "editMessageText"), 60)
                await asyncio.sleep(1.0)  # room for a second answer, were one coming
        finally:
            await mine.chat_model.aclose()
    assert len(texts_to(fake_tg, USER)) == 1, texts_to(fake_tg, USER)
    assert len(llm.requests) == 1, "the answer was made again"
    assert len(fake_tg.called("editMessageText")) == 3  # two failures, then the edit itself
    assert fake_tg.sent_to(USER, "editMessageText")[-1].text == "The sea is wide. It is also very deep."


async def test_polling_does_not_spin_while_an_answer_runs_with_a_finished_update_behind_it(fake_tg, tmp_path, engines):
    async with running_bot(bot_settings(tmp_path, fake_tg), engines):
        gate = fake_tg.hold("getFile")  # the first user's recording stays in flight
        fake_tg.voice_update(USER, b"not really audio")
        await fake_tg.wait_for(lambda: fake_tg.called("getFile"), 30)
        fake_tg.text_update(USER + 1, "/help")  # a later update, answered at once
        await fake_tg.wait_for(lambda: texts_to(fake_tg, USER + 1), 30)
        before = len(fake_tg.called("getUpdates"))
        await asyncio.sleep(3.0)
        polls = len(fake_tg.called("getUpdates")) - before
        fake_tg.release("getFile")
        await fake_tg.wait_for(lambda: texts_to(fake_tg, USER), 30)
    assert not gate.is_set() or gate.deliver
    assert polls <= 3, f"{polls} getUpdates calls in 3 s with a 2-s long poll"
    assert len(texts_to(fake_tg, USER + 1)) == 1


async def test_a_burst_of_bad_messages_gets_a_few_error_replies(fake_tg, tmp_path, engines):
    async with running_bot(bot_settings(tmp_path, fake_tg), engines):
        for _ in range(20):
            fake_tg.message_update(USER, {"sticker": {"file_id": "S1", "file_unique_id": "s1", "type": "regular",
                                                      "width": 512, "height": 512, "is_animated": False, "is_video": False}})
        await fake_tg.wait_for(lambda: texts_to(fake_tg, USER), 30)
        await fake_tg.wait_for(lambda: not fake_tg.updates, 30)
        await asyncio.sleep(0.5)
    replies = texts_to(fake_tg, USER)
    assert 1 <= len(replies) <= 3, replies


async def test_the_command_menu_is_filled_for_everyone_and_the_admins(fake_tg, tmp_path, engines):
    from tests.telegram_support import ADMIN

    async with running_bot(bot_settings(tmp_path, fake_tg), engines):
        await fake_tg.wait_for(lambda: len(fake_tg.menus) >= 2, 30)
    everyone = fake_tg.menus['{"type": "default"}']
    admin = fake_tg.menus[f'{{"chat_id": {ADMIN}, "type": "chat"}}']
    assert {"start", "help", "reset", "voice", "language", "cancel", "forget"} <= set(everyone) and "add_voice" not in everyone
    assert {"start", "help", "add_voice", "train_avatar", "allow", "deny", "stats", "reset"} <= set(admin)


async def test_a_recording_too_long_by_its_stated_duration_is_refused_before_download(fake_tg, tmp_path, engines):
    async with running_bot(bot_settings(tmp_path, fake_tg), engines):
        fake_tg.voice_update(USER, b"OggS" + b"\0" * 1000, duration=600)
        said = await fake_tg.wait_for(lambda: texts_to(fake_tg, USER), 30)
    assert "600 s long; the limit is 120 s" in said[0]
    assert not fake_tg.called("getFile")
