"""Telegram conversations, end to end: the real aiogram bot, the real engines, a fake Bot API server on 127.0.0.1."""
from __future__ import annotations

import io
import os

import numpy as np

from adapters.media import decode_audio, probe
from bot.telegram.video_note import prepare
from core.types import ConversationKey
from tests.speech import speech_clips
from tests.telegram_support import ADMIN, bot_settings, fake_tg, running_bot, texts_to  # noqa: F401  (fixture)

USER = 501


def _portrait_jpeg() -> bytes:
    from PIL import Image

    from geneface.testclip import portrait

    buf = io.BytesIO()
    Image.fromarray(portrait(256)[0]).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def _clip(min_seconds: float = 4.0) -> bytes:
    path, _seconds, _text = speech_clips("en", min_seconds)[0]
    return path.read_bytes()


async def test_voice_note_is_answered_with_text_then_an_opus_voice_note_then_a_round_video(fake_tg, tmp_path, engines):
    async with running_bot(bot_settings(tmp_path, fake_tg), engines) as (_app, services):
        # an admin makes a photo avatar (the photo engine needs no training); the user picks it for their chat
        fake_tg.photo_update(ADMIN, _portrait_jpeg(), 256, 256, caption="/train_avatar astro")
        await fake_tg.wait_for(lambda: any("'astro' is ready" in t for t in texts_to(fake_tg, ADMIN)), 30)
        fake_tg.text_update(USER, "/avatar astro")
        await fake_tg.wait_for(lambda: texts_to(fake_tg, USER), 30)
        replies_before = len(fake_tg.sent_to(USER))

        fake_tg.voice_update(USER, _clip(), duration=5)
        note = (await fake_tg.wait_for(lambda: fake_tg.sent_to(USER, "sendVideoNote"), 120))[0]
        voice = fake_tg.sent_to(USER, "sendVoice")[0]

        ogg = voice.files["voice"]
        info = probe(ogg)
        assert (info["format"], info["audio_codec"]) == ("ogg", "opus")
        spoken = decode_audio(ogg)
        assert spoken.seconds > 0.5
        heard = await services.recognizer.transcribe(spoken, "en")
        assert heard.text.strip(), "the voice note should say something"

        # the text came first, plain (no parse_mode), then the voice, then the round video; the bot showed it was recording
        methods = [s.method for s in fake_tg.sent_to(USER)[replies_before:] if s.method != "sendChatAction"]
        assert methods.index("sendMessage") < methods.index("sendVoice") < methods.index("sendVideoNote")
        assert "record_video_note" in [c.get("action") for c in fake_tg.called("sendChatAction")]
        assert all("parse_mode" not in s.fields for s in fake_tg.sent_to(USER, "sendMessage", "editMessageText"))
        assert int(voice.fields["duration"]) >= 1

        video = probe(note.files["video_note"])
        assert (video["video_codec"], video["audio_codec"]) == ("h264", "aac")
        assert video["width"] == video["height"] == int(note.fields["length"]) <= 639
        assert abs(video["seconds"] - spoken.seconds) < 1.0 and video["seconds"] <= 60

        history = await services.history.load(ConversationKey(f"tg:{USER}", f"tg:{USER}"), 10_000)
        assert [m.role for m in history] == ["user", "assistant"]
        assert history[0].content.strip()


def test_an_answer_video_over_a_minute_goes_as_a_normal_video():
    assert prepare(b"not even decoded", 61.0).method == "video"


async def test_typed_text_gets_a_text_answer_only(fake_tg, tmp_path, engines):
    async with running_bot(bot_settings(tmp_path, fake_tg), engines):
        fake_tg.text_update(USER, "Hello! What do you like to do on a sunny day?")
        answer = await fake_tg.wait_for(lambda: texts_to(fake_tg, USER), 60)
        assert answer[0].strip()
        assert not fake_tg.sent_to(USER, "sendVoice")  # typed in, typed out (reply_voice_to_text is off)
        assert "typing" in [c.get("action") for c in fake_tg.called("sendChatAction")]


async def test_video_note_is_heard_through_its_sound(fake_tg, tmp_path, engines):
    from adapters.video import encode_video_note

    speech = decode_audio(_clip(), 48_000)
    frames = [np.full((240, 240, 3), 90, np.uint8) for _ in range(int(speech.seconds * 10))]
    note = encode_video_note(frames, 10.0, speech, side=240)
    async with running_bot(bot_settings(tmp_path, fake_tg), engines):
        fake_tg.video_note_update(USER, note)
        await fake_tg.wait_for(lambda: fake_tg.sent_to(USER, "sendVoice"), 120)
        assert texts_to(fake_tg, USER)
        assert "record_voice" in [c.get("action") for c in fake_tg.called("sendChatAction")]


async def test_a_corrupt_recording_gets_a_polite_reply_and_the_bot_keeps_serving(fake_tg, tmp_path, engines):
    async with running_bot(bot_settings(tmp_path, fake_tg), engines):
        fake_tg.voice_update(USER, os.urandom(3000))
        refusal = await fake_tg.wait_for(lambda: texts_to(fake_tg, USER), 60)
        assert "could not read that audio" in refusal[0]

        fake_tg.text_update(USER, "Are you still there?")
        await fake_tg.wait_for(lambda: len(texts_to(fake_tg, USER)) >= 2, 60)
        assert not fake_tg.sent_to(USER, "sendVoice")


async def test_files_over_the_download_limit_and_unsupported_messages_are_refused_clearly(fake_tg, tmp_path, engines):
    async with running_bot(bot_settings(tmp_path, fake_tg), engines):
        fake_tg.voice_update(USER, b"OggS" + bytes(100), file_size=25 * 1024 * 1024)
        fake_tg.document_update(USER + 1, b"%PDF-1.4", "notes.pdf", "application/pdf")
        fake_tg.message_update(USER + 2, {"sticker": {"file_id": "S1", "file_unique_id": "s1", "type": "regular",
                                                       "width": 512, "height": 512, "is_animated": False,
                                                       "is_video": False}})
        await fake_tg.wait_for(lambda: all(texts_to(fake_tg, u) for u in (USER, USER + 1, USER + 2)), 30)
        assert "25.0 MB" in texts_to(fake_tg, USER)[0] and "up to 20 MB" in texts_to(fake_tg, USER)[0]
        assert not fake_tg.called("getFile"), "an oversized file must be refused before it is fetched"
        for user in (USER + 1, USER + 2):
            assert "voice messages, audio files, video notes and text" in texts_to(fake_tg, user)[0]


async def test_in_groups_the_bot_answers_only_when_addressed(fake_tg, tmp_path, engines):
    group = -100200
    async with running_bot(bot_settings(tmp_path, fake_tg), engines):
        fake_tg.text_update(USER, "what a nice day everyone", chat_id=group, chat_type="supergroup")
        fake_tg.text_update(USER, "@doppel_test_bot what is a nice thing to do today?", chat_id=group, chat_type="supergroup")
        answers = await fake_tg.wait_for(lambda: fake_tg.sent_to(group, "sendMessage"), 60)
        # give the ignored message's handling time to show up if it were (wrongly) answered
        await fake_tg.wait_for(lambda: len(fake_tg.delivered) >= 2, 10)
        assert len(answers) == 1
        asked = next(u for u in fake_tg.messages.values() if "@doppel_test_bot" in u.get("text", ""))
        assert answers[0].fields["reply_parameters"]["message_id"] == asked["message_id"]


async def test_a_user_can_stop_their_own_answer_and_typed_text_gets_voice_when_configured(fake_tg, tmp_path, engines):
    settings = bot_settings(tmp_path, fake_tg, reply_voice_to_text=True)
    async with running_bot(settings, engines):
        fake_tg.hold("sendVoice")  # the answer gets as far as uploading its voice note, and waits there
        fake_tg.text_update(USER, "Tell me about your favourite song.")
        await fake_tg.wait_for(lambda: fake_tg.called("sendVoice"), 60)
        fake_tg.text_update(USER, "/cancel")
        await fake_tg.wait_for(lambda: "Stopped your reply." in texts_to(fake_tg, USER), 30)
        fake_tg.release("sendVoice", deliver=False)

        fake_tg.text_update(USER, "/cancel")
        await fake_tg.wait_for(lambda: "I am not working on anything for you." in texts_to(fake_tg, USER), 30)
        assert not fake_tg.sent_to(USER, "sendVoice")
