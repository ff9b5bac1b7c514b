"""The Discord bot end to end: the real discord.py client, our bot, the fake Discord, real clips and engines."""
from __future__ import annotations

import asyncio
import base64

import pytest

from adapters.media import decode_audio
from tests.fakes.discord_api import IS_VOICE_MESSAGE, EPHEMERAL, Upload
from tests.fakes.discord_bot import discord_world
from tests.speech import speech_clips


def voice_upload(path) -> Upload:
    data = path.read_bytes()
    audio = decode_audio(data)
    from core.audio import waveform_bytes

    return Upload("voice-message.ogg", data, "audio/ogg", audio.seconds, base64.b64encode(waveform_bytes(audio)).decode())


@pytest.fixture
async def world(tmp_path, engines):
    async with discord_world(tmp_path, engines) as w:
        yield w


async def test_a_voice_message_in_a_dm_is_answered_with_a_voice_message(world, engines):
    fake = world.fake
    dm = fake.dm_channel(world.alice)
    path, _, _ = speech_clips("en", min_seconds=2.5)[0]
    question = await fake.send_message(dm, world.alice, attachments=[voice_upload(path)], flags=IS_VOICE_MESSAGE)

    reply = await fake.wait_for(lambda m: m.by_bot and m.channel_id == dm and m.is_voice)
    assert reply.payload["message_reference"]["message_id"] == str(question.id)
    # the answer's text comes beside the voice message, which cannot carry any
    (text,) = [m for m in fake.bot_messages(dm) if not m.is_voice]
    assert text.content.strip() and text.payload["message_reference"]["message_id"] == str(question.id)
    (attachment,) = reply.attachments
    assert attachment["content_type"] == "audio/ogg"
    waveform = base64.b64decode(attachment["waveform"])
    assert 0 < len(waveform) <= 256 and max(waveform) > 0
    spoken = decode_audio(reply.files[0])
    assert attachment["duration_secs"] == pytest.approx(spoken.seconds, abs=0.1)
    transcript = await engines.recognizer.transcribe(spoken, "en")
    assert transcript.text.strip()
    assert not fake.errors


async def test_ask_defers_then_answers_with_text_and_a_voice_message(world, engines):
    fake = world.fake
    await fake.invoke("ask", world.alice, world.channel, text="What colour is the sky on a clear day?")
    voice = await fake.wait_for(lambda m: m.channel_id == world.channel and m.is_voice)
    text = next(m for m in fake.bot_messages(world.channel) if m.payload.get("interaction_metadata"))
    assert text.content and text.edits >= 1  # the "thinking…" placeholder became the answer
    assert voice.payload.get("webhook_id") == str(fake.application_id)  # sent as the interaction's follow-up
    spoken = decode_audio(voice.files[0])
    assert (await engines.recognizer.transcribe(spoken, "en")).text.strip()
    assert not fake.errors


async def test_a_message_sent_while_the_gateway_is_down_is_answered_after_resume(world):
    fake = world.fake
    await fake.gateway.drop()
    # the bot is between sockets: the event waits in the session and must come with the RESUME replay
    await fake.send_message(world.channel, world.alice, f"<@{fake.bot['id']}> Say hello in three words.",
                            mentions=[fake.bot])
    reply = await fake.wait_for(lambda m: m.by_bot and m.channel_id == world.channel and m.content)
    assert fake.gateway.log.resumes == 1 and fake.gateway.log.identifies == 1
    assert fake.gateway.log.heartbeats >= 2  # discord.py beats at once on each socket's HELLO
    assert reply.payload["message_reference"]
    assert len(fake.bot_messages(world.channel)) == 1  # answered once, not twice


async def test_an_unknown_session_makes_the_bot_identify_again(world):
    fake = world.fake
    fake.gateway.sessions.clear()  # the gateway forgot the session: RESUME gets INVALID_SESSION
    await fake.gateway.drop()
    async def identified_again() -> None:
        while fake.gateway.log.identifies < 2:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(identified_again(), 30)
    await fake.invoke("persona", world.alice, world.channel)
    shown = await fake.wait_for(lambda m: m.by_bot and "Persona here" in m.content, timeout=30)
    assert shown.flags & EPHEMERAL


@pytest.mark.parametrize("command, options", [
    ("jobs", {}),
    ("cancel", {"job": 1}),
    ("train_avatar", {"name": "bob", "source": Upload("bob.mp4", b"\x00" * 64, "video/mp4")}),
])
async def test_admin_commands_refuse_other_users(world, command, options):
    fake = world.fake
    await fake.invoke(command, world.alice, world.channel, **options)
    refusal = await fake.wait_for(lambda m: m.channel_id == world.channel and m.by_bot)
    assert "only the bot's admins" in refusal.content
    assert refusal.flags & EPHEMERAL
    assert await world.services.jobs.list() == []
