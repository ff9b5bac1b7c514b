"""Bad input gets a typed error a bot can show as-is, and leaves nothing half-written behind."""
import numpy as np
import pytest

from adapters.media import decode_audio, encode_ogg_opus, encode_wav
from bot.common.dialogue import Dialogue, Incoming
from core.errors import AudioTooLong, DoppelError, EmptyAudio, NoSpeech, UnknownUser, UnreadableAudio
from core.types import Audio, AudioFrame, ConversationKey, NoteFrame
from tests.speech import speech_clips


def real_clip() -> bytes:
    return speech_clips("en", min_seconds=3.0)[0][0].read_bytes()


async def reply_error(services, **kwargs) -> DoppelError:
    with pytest.raises(DoppelError) as info:
        [f async for f in Dialogue(services).reply(Incoming("tg:1", "tg:1", **kwargs))]
    assert await services.history.count(ConversationKey("tg:1", "tg:1")) == 0
    assert info.value.message and "Traceback" not in info.value.message
    return info.value


async def test_zero_byte_file(services):
    assert isinstance(await reply_error(services, audio=b""), EmptyAudio)


async def test_bytes_that_are_not_audio(services):
    assert isinstance(await reply_error(services, audio=b"%PDF-1.4 not a sound at all" * 50), UnreadableAudio)


async def test_truncated_ogg_keeps_what_decodes_or_refuses_clearly(services):
    data = real_clip()
    # a few bytes past the headers: nothing usable
    assert isinstance(await reply_error(services, audio=data[:200]), UnreadableAudio)
    # most of the file: the decodable part is still answered
    partial = decode_audio(data[: len(data) * 3 // 4])
    assert partial.seconds > 1.0


async def test_audio_over_the_length_limit(services):
    long = Audio(np.zeros(16000 * 130, dtype=np.float32), 16000)
    err = await reply_error(services, audio=encode_wav(long))
    assert isinstance(err, AudioTooLong) and "130" in err.message


async def test_silence_is_no_speech(services):
    quiet = Audio((np.random.default_rng(0).standard_normal(16000 * 3) * 1e-4).astype(np.float32), 16000)
    assert isinstance(await reply_error(services, audio=encode_ogg_opus(quiet)), NoSpeech)


async def test_empty_text(services):
    assert isinstance(await reply_error(services, text="   "), NoSpeech)


async def test_a_chat_whose_voice_does_not_exist_is_answered_in_the_standard_voice(services):
    # a missing voice never blocks the reply: the answer is spoken in the standard voice, and the note says why
    await services.chats.set("tg:1", voice="nobody")
    frames = [f async for f in Dialogue(services).reply(Incoming("tg:1", "tg:1", text="hello"))]
    notes = [f.text for f in frames if isinstance(f, NoteFrame)]
    assert any("nobody" in note for note in notes), notes
    assert any(isinstance(f, AudioFrame) for f in frames)


async def test_unknown_user_export(services):
    with pytest.raises(UnknownUser):
        await services.history.export_user("tg:404")


async def test_the_bot_keeps_serving_after_bad_input(services):
    await reply_error(services, audio=b"garbage" * 100)
    frames = [f async for f in Dialogue(services).reply(Incoming("tg:1", "tg:1", audio=real_clip()))]
    assert frames[-1].text
