"""Decoding every common input container and encoding the voice-note format, with the bundled FFmpeg."""
import io

import av
import numpy as np
import pytest

from adapters.media import decode_audio, encode_ogg_opus, probe
from core.types import Audio
from tests.speech import speech_clips


def reencode(audio: Audio, fmt: str, codec: str, video: bool = False) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        rate = 48000 if codec in ("libopus", "opus") else 44100
        if video:
            v = out.add_stream("libx264", rate=25)
            v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        stream = out.add_stream(codec, rate=rate, layout="mono")
        pcm = np.interp(np.arange(0, len(audio.samples), audio.sample_rate / rate), np.arange(len(audio.samples)), audio.samples)
        frame_size = stream.codec_context.frame_size or 1024
        fmt_name = stream.codec_context.format.name
        pts = 0
        for start in range(0, len(pcm), frame_size):
            chunk = pcm[start:start + frame_size].astype(np.float32)
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = rate
            frame.pts = pts
            pts += len(chunk)
            if fmt_name != "flt":
                frame = av.AudioResampler(format=fmt_name, layout="mono", rate=rate).resample(frame)[0]
            for packet in stream.encode(frame):
                out.mux(packet)
        if video:
            for i in range(int(audio.seconds * 25)):
                img = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i % 255, np.uint8), format="rgb24")
                img.pts = i
                for packet in v.encode(img):
                    out.mux(packet)
            for packet in v.encode(None):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


@pytest.fixture(scope="module")
def speech() -> Audio:
    return decode_audio(speech_clips("en", min_seconds=3.0)[0][0].read_bytes())


@pytest.mark.parametrize("fmt,codec,video", [
    ("mp3", "libmp3lame", False), ("ipod", "aac", False), ("wav", "pcm_s16le", False),
    ("webm", "libopus", False), ("mp4", "aac", True),
])
def test_common_containers_decode_to_the_same_speech(speech, fmt, codec, video):
    data = reencode(speech, fmt, codec, video)
    back = decode_audio(data)
    assert back.sample_rate == 16000
    assert abs(back.seconds - speech.seconds) < 0.15
    # same signal: the envelopes line up
    n = min(len(back.samples), len(speech.samples))
    env = lambda x: np.abs(x[: n - n % 160]).reshape(-1, 160).mean(axis=1)
    assert np.corrcoef(env(back.samples), env(speech.samples))[0, 1] > 0.9


def test_voice_note_is_ogg_opus_mono_48k(speech):
    note = encode_ogg_opus(speech)
    info = probe(note)
    assert (info["format"], info["audio_codec"], info["audio_rate"]) == ("ogg", "opus", 48000)
    with av.open(io.BytesIO(note)) as c:
        assert c.streams.audio[0].codec_context.channels == 1
    assert abs(decode_audio(note).seconds - speech.seconds) < 0.1
