"""The bot in a server: when it answers, per-server settings, roles, limits and clear refusals."""
from __future__ import annotations

import io
import json

import pytest

from adapters.media import decode_audio, probe
from core.types import ConversationKey
from tests.fakes.discord_api import EPHEMERAL, IS_VOICE_MESSAGE, Upload
from tests.fakes.discord_bot import discord_world
from tests.speech import speech_clips
from tests.test_discord_bot import voice_upload


def portrait_jpeg() -> bytes:
    from PIL import Image

    from geneface.testclip import portrait

    buf = io.BytesIO()
    Image.fromarray(portrait(256)[0]).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def mention(fake) -> str:
    return f"<@{fake.bot['id']}>"


async def test_a_voice_reply_to_the_bot_in_a_server_gets_a_voice_message_and_a_video(tmp_path, engines):
    async with discord_world(tmp_path, engines) as w:
        fake = w.fake
        # an admin makes a photo avatar (the photo engine needs no training) and picks it for the server
        await fake.invoke("train_avatar", w.admin, w.channel, name="astro", source=Upload("me.jpg", portrait_jpeg(), "image/jpeg"))
        await fake.wait_for(lambda m: m.by_bot and "**astro** is ready" in m.content)
        await fake.invoke("avatar", w.admin, w.channel, name="astro")
        await fake.wait_for(lambda m: m.by_bot and "face **astro**" in m.content)
        path, _, _ = speech_clips("en", min_seconds=2.0)[1]
        # not addressed to the bot: ignored
        await fake.send_message(w.channel, w.alice, attachments=[voice_upload(path)], flags=IS_VOICE_MESSAGE)
        earlier = await fake.send_message(w.channel, fake.bot, "Hello, I am doppel.")
        question = await fake.send_message(w.channel, w.alice, attachments=[voice_upload(path)], flags=IS_VOICE_MESSAGE,
                                           reply_to=earlier.id)
        video = await fake.wait_for(lambda m: m.by_bot and m.channel_id == w.channel and m.attachments
                                    and m.attachments[0]["filename"].endswith(".mp4"))
        voice = next(m for m in fake.bot_messages(w.channel) if m.is_voice)
        assert voice.payload["message_reference"]["message_id"] == str(question.id)
        info = probe(video.files[0])
        assert (info["video_codec"], info["audio_codec"]) == ("h264", "aac")
        assert info["seconds"] == pytest.approx(decode_audio(voice.files[0]).seconds, abs=1.0)
        replies = [m for m in fake.bot_messages(w.channel) if m.id > earlier.id]
        assert len(replies) == 3  # the answer's text, the voice message and the video; the unaddressed message got nothing


@pytest.fixture
async def world(tmp_path, engines):
    async with discord_world(tmp_path, engines, discord_max_download=1_000_000) as w:
        yield w


async def test_too_large_and_unsupported_files_get_clear_replies(world):
    fake = world.fake
    dm = fake.dm_channel(world.alice)
    await fake.send_message(dm, world.alice, attachments=[Upload("long.ogg", b"OggS" + bytes(1_500_000), "audio/ogg")])
    big = await fake.wait_for(lambda m: m.by_bot and m.channel_id == dm)
    assert big.content == "That file is 1.5 MB; the limit is 1 MB."
    await fake.send_message(world.channel, world.alice, mention(fake), mentions=[fake.bot],
                            attachments=[Upload("notes.pdf", b"%PDF-1.4", "application/pdf")])
    odd = await fake.wait_for(lambda m: m.by_bot and m.channel_id == world.channel)
    assert "notes.pdf" in odd.content and "audio file" in odd.content


async def test_server_settings_need_a_manager_and_stick_to_the_server(world):
    fake, chats = world.fake, world.services.chats
    await fake.invoke("persona", world.alice, world.channel, name="default")
    refused = await fake.wait_for(lambda m: m.by_bot and m.channel_id == world.channel)
    assert "managers" in refused.content and refused.flags & EPHEMERAL
    assert (await chats.get(f"dc:{world.guild}")).persona is None

    await fake.invoke("persona", world.admin, world.channel, name="default")
    await fake.wait_for(lambda m: m.by_bot and "I am **default** here" in m.content)
    assert (await chats.get(f"dc:{world.guild}")).persona == "default"

    await fake.invoke("voice", world.admin, world.channel, name="nobody")
    unknown = await fake.wait_for(lambda m: m.by_bot and "nobody" in m.content)
    assert "There is no voice called 'nobody'" in unknown.content


async def test_allowed_roles_keep_others_out(world):
    fake = world.fake
    talkers = fake.add_role(world.guild, "talkers")
    await fake.invoke("roles", world.admin, world.channel, role=str(talkers))
    await fake.wait_for(lambda m: m.by_bot and "Only these roles" in m.content)
    await fake.send_message(world.channel, world.alice, f"{mention(fake)} hello", mentions=[fake.bot])
    refusal = await fake.wait_for(lambda m: m.by_bot and "allowed role" in m.content)
    assert refusal.payload["message_reference"]


async def test_say_speaks_and_the_rate_limit_holds_back_a_flood(tmp_path, engines):
    async with discord_world(tmp_path, engines, rate_limit_per_minute=1) as world:
        fake = world.fake
        await fake.invoke("say", world.alice, world.channel, text="Good morning to everyone here.")
        voice = await fake.wait_for(lambda m: m.by_bot and m.is_voice)
        heard = await engines.recognizer.transcribe(decode_audio(voice.files[0]), "en")
        assert "morning" in heard.text.lower()
        await fake.invoke("say", world.alice, world.channel, text="And again.")
        limited = await fake.wait_for(lambda m: m.by_bot and "too fast" in m.content)
        assert limited.flags & EPHEMERAL


async def test_mydata_exports_and_forget_deletes(world):
    fake, services = world.fake, world.services
    user = f"dc:{world.alice['id']}"
    await services.users.touch(user, "alice")
    await services.history.append_exchange(ConversationKey(user, f"dc:{world.guild}"), "my cat is called Tom", "Nice name!")
    await fake.invoke("mydata", world.alice, world.channel)
    export = await fake.wait_for(lambda m: m.by_bot and m.attachments)
    assert export.flags & EPHEMERAL
    assert json.loads(export.files[0])["messages"][0]["content"] == "my cat is called Tom"
    await fake.invoke("forget", world.alice, world.channel)
    await fake.wait_for(lambda m: m.by_bot and "Deleted your data (2" in m.content)
    assert await services.users.get(user) is None


async def test_where_voice_messages_are_not_allowed_the_audio_comes_as_a_file(world):
    fake = world.fake
    quiet = fake.add_text_channel(world.guild, "no-voice")
    fake.no_voice_channels.add(quiet)
    await fake.invoke("say", world.alice, quiet, text="Can you hear me now?")
    sent = await fake.wait_for(lambda m: m.by_bot and m.channel_id == quiet and m.attachments)
    assert not sent.is_voice and sent.attachments[0]["filename"] == "reply.ogg"
    assert decode_audio(sent.files[0]).seconds > 0.5
    assert [e["code"] for e in fake.errors] == [50173]


async def test_in_a_dm_its_user_chooses_the_settings(world):
    fake = world.fake
    dm = fake.dm_channel(world.alice)
    await fake.invoke("persona", world.alice, dm, name="default")
    await fake.wait_for(lambda m: m.by_bot and m.channel_id == dm and "I am **default** here" in m.content)
    assert (await world.services.chats.get(f"dc:{dm}")).persona == "default"
    assert (await world.services.chats.get(f"dc:{world.guild}")).persona is None
