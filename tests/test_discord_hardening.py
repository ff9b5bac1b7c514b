"""Discord under trouble: a send that meets a rate limit or a 5xx is retried alone (never a second answer), and a
burst of bad messages gets a few error replies, not one each."""
from __future__ import annotations

import asyncio

from adapters.engines import Engines, build_chat_model
from adapters.settings import Settings
from core.types import ConversationKey
from tests.fakes.discord_api import Upload
from tests.fakes.discord_bot import discord_world
from tests.fakes.llm_servers import FakeLLMServer, Reply
from tests.test_llm_providers import KEYS


async def test_failed_sends_are_retried_alone_and_the_answer_is_made_once(tmp_path, engines):
    async with FakeLLMServer("openai", [Reply(pieces=["The sea is wide.", " It is deep."])]) as llm:
        settings = Settings(_env_file=None, data_dir=tmp_path / "llm", llm_provider="openai", llm_model="gpt-test-mini",
                            openai_base_url=llm.base_url, openai_api_key=KEYS["openai"], llm_retries=0)
        mine = Engines(recognizer=engines.recognizer, chat_model=build_chat_model(settings),
                       synthesizers=engines.synthesizers, converters={}, renderer=None)
        try:
            async with discord_world(tmp_path, mine, persona="default") as world:
                fake = world.fake
                dm = fake.dm_channel(world.alice)
                fake.fail("POST", f"/channels/{dm}/messages", 429, retry_after=0.5)
                fake.fail("POST", f"/channels/{dm}/messages", 502)
                await fake.send_message(dm, world.alice, "Tell me about the sea.")
                await fake.wait_for(lambda m: m.by_bot and m.channel_id == dm, 60)
                await asyncio.sleep(1.0)  # room for a second answer, were one coming
                replies = fake.bot_messages(dm)
        finally:
            await mine.chat_model.aclose()
    assert [m.content for m in replies] == ["The sea is wide. It is deep."]
    assert len(llm.requests) == 1


async def test_a_burst_of_bad_messages_gets_a_few_error_replies(tmp_path, engines):
    async with discord_world(tmp_path, engines, rate_limit_per_minute=0) as world:
        fake = world.fake
        dm = fake.dm_channel(world.alice)
        two = [Upload("a.txt", b"a", "text/plain"), Upload("b.txt", b"b", "text/plain")]
        for _ in range(20):
            await fake.send_message(dm, world.alice, attachments=two)
        await fake.wait_for(lambda m: m.by_bot and m.channel_id == dm, 30)
        await asyncio.sleep(2.0)
        replies = fake.bot_messages(dm)
    assert 1 <= len(replies) <= 3, [m.content for m in replies]


async def test_admin_commands_are_hidden_from_members_and_errors_after_deferral_stay_private(tmp_path, engines):
    from tests.fakes.discord_api import EPHEMERAL

    async with discord_world(tmp_path, engines) as world:
        fake = world.fake
        registered = {c["name"]: c for commands in fake.commands.values() for c in commands}
        manage_guild = str(1 << 5)
        admin = {name for name, c in registered.items() if c["description"].startswith("Admin:")}
        assert len(admin) == 12 and "add_rvc" in admin, sorted(admin)  # /cancel is for members too
        hidden = {name for name, c in registered.items() if str(c["default_member_permissions"]) == manage_guild}
        assert hidden == admin
        assert registered["ask"]["default_member_permissions"] is None
        assert registered["cancel"]["default_member_permissions"] is None  # members stop their own answers with it
        # an admin's command that fails after it deferred: the error reaches only the admin
        await fake.invoke("train_avatar", world.admin, world.channel, name="bad",
                          source=Upload("notes.txt", b"just text", "text/plain"))
        refusal = await fake.wait_for(lambda m: m.by_bot and "neither a video nor a photo" in m.content)
        await asyncio.sleep(0.5)
        public = [m for m in fake.bot_messages(world.channel) if not m.flags & EPHEMERAL]
    assert refusal.flags & EPHEMERAL
    assert not public, [m.content for m in public]


async def test_help_and_the_admins_allow_deny_and_stats(tmp_path, engines):
    from tests.fakes.discord_api import EPHEMERAL

    async with discord_world(tmp_path, engines, rate_limit_per_minute=0) as world:
        fake = world.fake
        await fake.invoke("help", world.alice, world.channel)
        shown = await fake.wait_for(lambda m: m.by_bot and "/ask" in m.content)
        assert shown.flags & EPHEMERAL and "/stats" not in shown.content
        await fake.invoke("cancel", world.alice, world.channel)
        idle = await fake.wait_for(lambda m: m.by_bot and "not working on anything" in m.content)
        assert idle.flags & EPHEMERAL
        for name in ("allow", "deny", "stats"):
            assert str(next(c for c in fake.commands[None] if c["name"] == name)["default_member_permissions"]) == str(1 << 5)

        await fake.invoke("deny", world.admin, world.channel, user=f"<@{world.alice['id']}>")
        await fake.wait_for(lambda m: m.by_bot and "may no longer use the bot" in m.content)
        dm = fake.dm_channel(world.alice)
        await fake.send_message(dm, world.alice, "Hello?")
        refused = await fake.wait_for(lambda m: m.by_bot and m.channel_id == dm)
        assert "not allowed" in refused.content

        await fake.invoke("stats", world.admin, world.channel)
        figures = await fake.wait_for(lambda m: m.by_bot and m.content.startswith("Users:"))
        assert figures.flags & EPHEMERAL and "Answers running now" in figures.content
        await fake.invoke("allow", world.admin, world.channel, user=world.alice["id"])
        await fake.wait_for(lambda m: m.by_bot and "may now use the bot" in m.content)
        assert (await world.services.users.get(f"dc:{world.alice['id']}")).allowed


async def test_a_member_stops_their_own_running_answer_with_cancel(tmp_path, engines):
    release = asyncio.Event()
    async with FakeLLMServer("openai", [Reply(pieces=["The sea", " is wide."], hold_after=1, release=release)]) as llm:
        settings = Settings(_env_file=None, data_dir=tmp_path / "llm", llm_provider="openai", llm_model="gpt-test-mini",
                            openai_base_url=llm.base_url, openai_api_key=KEYS["openai"], llm_retries=0)
        mine = Engines(recognizer=engines.recognizer, chat_model=build_chat_model(settings),
                       synthesizers=engines.synthesizers, converters={}, renderer=None)
        try:
            async with discord_world(tmp_path, mine, persona="default") as world:
                fake = world.fake
                dm = fake.dm_channel(world.alice)
                await fake.send_message(dm, world.alice, "Tell me about the sea.")
                while not llm.pieces_sent:
                    await asyncio.sleep(0.05)
                await fake.invoke("cancel", world.alice, dm)
                await fake.wait_for(lambda m: m.by_bot and m.content == "Stopped your answer.", 30)
                release.set()
                await asyncio.sleep(0.5)
                said = [m.content for m in fake.bot_messages(dm)]
                key = ConversationKey(f"dc:{world.alice['id']}", f"dc:{dm}")
                assert await world.services.history.count(key) == 0
        finally:
            await mine.chat_model.aclose()
    assert "The sea is wide." not in said
