"""Discord's connection drops in the middle of an answer: the send is made again, and where the first attempt
did reach Discord, its message nonce keeps the answer from being posted twice."""
from __future__ import annotations

import asyncio

from adapters.engines import Engines, build_chat_model
from adapters.settings import Settings
from tests.fakes.discord_api import DROP, DROP_AFTER
from tests.fakes.discord_bot import discord_world
from tests.fakes.llm_servers import FakeLLMServer, Reply
from tests.test_llm_providers import KEYS


async def test_a_dropped_connection_is_retried_and_a_send_that_got_through_is_not_doubled(tmp_path, engines):
    async with FakeLLMServer("openai", [Reply(pieces=["The sea is wide.", " It is deep."])]) as llm:
        settings = Settings(_env_file=None, data_dir=tmp_path / "llm", llm_provider="openai", llm_model="gpt-test-mini",
                            openai_base_url=llm.base_url, openai_api_key=KEYS["openai"], llm_retries=0)
        mine = Engines(recognizer=engines.recognizer, chat_model=build_chat_model(settings),
                       synthesizers=engines.synthesizers, converters={}, renderer=None)
        try:
            async with discord_world(tmp_path, mine, persona="default", reply_voice_to_text=True) as world:
                fake = world.fake
                dm = fake.dm_channel(world.alice)
                # the text: not posted at all, the first time; the voice message: posted, but the answer lost
                fake.fail_every_send("POST", [(DROP, None), (DROP_AFTER, None)])
                await fake.send_message(dm, world.alice, "Tell me about the sea.")
                await fake.wait_for(lambda m: m.by_bot and m.channel_id == dm and bool(m.files), 60)
                await asyncio.sleep(1.0)  # room for a second answer, were one coming
                replies = fake.bot_messages(dm)
                failed = fake.failed_sends
        finally:
            await mine.chat_model.aclose()
    assert failed == 2
    assert [m.content for m in replies if m.content] == ["The sea is wide. It is deep."]
    assert sum(1 for m in replies if m.files) == 1
    assert len(llm.requests) == 1
