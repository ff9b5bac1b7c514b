"""/language on Discord, as on Telegram: show the language expected here, choose one of the deployment's
(DOPPEL_LANGUAGES) or auto; unknown codes and codes outside the list are refused with a clear message."""
from __future__ import annotations

from bot.discord.gate import chat_key
from tests.fakes.discord_api import EPHEMERAL
from tests.fakes.discord_bot import discord_world


async def test_language_is_shown_chosen_and_checked(tmp_path, engines):
    async with discord_world(tmp_path, engines, languages=["en", "fr", "es"]) as world:
        fake, chats = world.fake, world.services.chats
        dm = fake.dm_channel(world.alice)

        async def said(**options) -> tuple[str, int]:
            before = {m.id for m in fake.bot_messages(dm) + fake.bot_messages(world.channel)}
            await fake.invoke("language", world.alice, options.pop("channel", dm), **options)
            reply = await fake.wait_for(lambda m: m.by_bot and m.id not in before and m.content, 30)
            return reply.content, reply.flags

        shown, flags = await said()
        assert "I expect **en** here" in shown and "en, fr, es" in shown and flags & EPHEMERAL

        assert (await said(code="FR"))[0] == "Language here: **fr**."
        assert (await chats.get(chat_key(None, dm))).language == "fr"
        assert "I expect **fr** here" in (await said())[0]

        assert "'xx' is not a language code" in (await said(code="xx"))[0]
        assert "Here I speak en, fr, es" in (await said(code="de"))[0]  # a real language, but not spoken here
        assert (await chats.get(chat_key(None, dm))).language == "fr"

        assert (await said(code="auto"))[0] == "Language here: **auto**."
        assert (await chats.get(chat_key(None, dm))).language == "auto"

        # in a server, the language is the server's: its managers choose it, a member may only look
        refused, _ = await said(code="es", channel=world.channel)
        assert "managers" in refused
        await fake.invoke("language", world.admin, world.channel, code="es")
        await fake.wait_for(lambda m: m.by_bot and m.content == "Language here: **es**.", 30)
        assert (await chats.get(chat_key(world.guild, world.channel))).language == "es"
        assert (await chats.get(chat_key(None, dm))).language == "auto"
