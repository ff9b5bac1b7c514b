"""Voice messages through discord.py's HTTP client against the fake Discord, which checks them like the API does."""
from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import discord
import pytest
from discord.http import Route

from adapters.media import decode_audio
from bot.discord.endpoints import point_at
from bot.discord.voice_message import IS_VOICE_MESSAGE, VoiceNote, send_voice_message, to_channel, voice_form
from core.audio import waveform_bytes
from tests.fakes.discord_api import FakeDiscord
from tests.speech import speech_clips


@pytest.fixture
async def api():
    async with FakeDiscord() as fake:
        owner = fake.add_user("owner")
        guild = fake.add_guild("g", owner)
        fake.channel = fake.add_text_channel(guild, "general")
        fake.quiet = fake.add_text_channel(guild, "no-voice")
        fake.no_voice_channels.add(fake.quiet)
        point_at(fake.api_url)
        http = discord.http.HTTPClient(asyncio.get_running_loop())
        await http.static_login(fake.token)
        try:
            yield fake, http
        finally:
            await http.close()


@pytest.fixture(scope="module")
def note() -> VoiceNote:
    path, _seconds, _ = speech_clips("en", min_seconds=2.0)[0]
    return VoiceNote.from_audio(decode_audio(path.read_bytes()))


async def test_a_voice_message_arrives_with_its_flag_duration_and_waveform(api, note):
    fake, http = api
    sent = await send_voice_message(http, to_channel(fake.channel), note)
    stored = fake.messages[int(sent["id"])]
    assert stored.is_voice and stored.content == ""
    (attachment,) = stored.attachments
    assert attachment["content_type"] == "audio/ogg"
    assert attachment["duration_secs"] == pytest.approx(note.seconds, abs=0.01)
    points = base64.b64decode(attachment["waveform"])
    assert 0 < len(points) <= 256 and max(points) == 255  # peaks are scaled to the loudest
    back = decode_audio(stored.files[0])
    assert back.seconds == pytest.approx(note.seconds, abs=0.1)
    assert waveform_bytes(back) != bytes(256)


async def test_a_channel_without_the_permission_refuses_with_50173(api, note):
    fake, http = api
    with pytest.raises(discord.Forbidden) as refused:
        await send_voice_message(http, to_channel(fake.quiet), note)
    assert refused.value.code == 50173
    assert not fake.bot_messages(fake.quiet)


@pytest.mark.parametrize("spoil, code", [
    (lambda form, p: p.update(content="hello"), 50159),
    (lambda form, p: (form.append({**form[1], "name": "files[1]"}), p["attachments"].append({"id": "1", "filename": "b.ogg"})), 50160),
    (lambda form, p: form[1].update(content_type="application/octet-stream"), 50160),
    (lambda form, p: form[1].update(value=b"RIFF" + bytes(100)), 50160),
    (lambda form, p: p["attachments"][0].pop("waveform"), 50161),
    (lambda form, p: p["attachments"][0].update(waveform=base64.b64encode(bytes(300)).decode()), 50161),
    (lambda form, p: p["attachments"][0].update(duration_secs=0), 50161),
])
async def test_malformed_voice_messages_get_discords_error_codes(api, note, spoil, code):
    fake, http = api
    form = voice_form(note)
    payload = json.loads(form[0]["value"])
    spoil(form, payload)
    form[0]["value"] = json.dumps(payload)
    with pytest.raises(discord.HTTPException) as refused:
        await http.request(to_channel(fake.channel), form=form)
    assert refused.value.code == code
    assert not fake.bot_messages(fake.channel)


async def test_a_voice_message_cannot_be_edited(api, note):
    fake, http = api
    sent = await send_voice_message(http, to_channel(fake.channel), note)
    route = Route("PATCH", "/channels/{channel_id}/messages/{message_id}", channel_id=fake.channel, message_id=sent["id"])
    with pytest.raises(discord.HTTPException) as refused:
        await http.request(route, json={"content": "edited"})
    assert refused.value.code == 50162


def test_a_note_the_api_would_refuse_is_caught_before_sending(note):
    with pytest.raises(ValueError):
        VoiceNote(note.ogg, note.seconds, bytes(257))
    with pytest.raises(ValueError):
        VoiceNote(note.ogg, 0.0, note.waveform)
    with pytest.raises(ValueError):
        VoiceNote(b"ID3" + note.ogg, note.seconds, note.waveform)


async def test_the_attachment_upload_flow(api, note):
    """POST /channels/{id}/attachments → PUT the bytes to upload_url → a message naming the uploaded file."""
    fake, http = api
    route = Route("POST", "/channels/{channel_id}/attachments", channel_id=fake.channel)
    slot = (await http.request(route, json={"files": [{"id": "0", "filename": "v.ogg", "file_size": len(note.ogg)}]}))["attachments"][0]
    async with aiohttp.ClientSession() as session, session.put(slot["upload_url"], data=note.ogg) as put:
        assert put.status == 200
    entry = {"id": "0", "filename": "v.ogg", "uploaded_filename": slot["upload_filename"],
             "duration_secs": note.seconds, "waveform": base64.b64encode(note.waveform).decode()}
    sent = await http.request(to_channel(fake.channel), json={"flags": IS_VOICE_MESSAGE, "attachments": [entry]})
    assert fake.messages[int(sent["id"])].files == [note.ogg]
    with pytest.raises(discord.HTTPException) as missing:
        await http.request(to_channel(fake.channel), json={"flags": IS_VOICE_MESSAGE,
                                                            "attachments": [{**entry, "uploaded_filename": "nope/v.ogg"}]})
    assert missing.value.code == 50146
