"""Decoding any common audio/video input and encoding Telegram/Discord-ready OGG/Opus, with PyAV's bundled FFmpeg."""
from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from core.errors import AudioTooLong, EmptyAudio, UnreadableAudio
from core.types import Audio

if TYPE_CHECKING:
    from av.container import InputContainer

ASR_RATE = 16_000
OPUS_RATE = 48_000


# what a reader takes: the bytes of a file, or its path (an upload streamed to disk is never read into memory)
Source = bytes | str | os.PathLike[str]


def open_input(source: Source) -> InputContainer:
    return av.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else os.fspath(source), mode="r",
                   metadata_errors="ignore")


def declared_seconds(container: InputContainer) -> float | None:
    """The length a container states (Ogg's last granule, MP4's header ...); None where it states none."""
    if container.duration:
        return float(container.duration / av.time_base)
    streams = container.streams.audio or container.streams.video
    if streams and streams[0].duration and streams[0].time_base:
        return float(streams[0].duration * streams[0].time_base)
    return None


def decode_audio(data: Source, sample_rate: int = ASR_RATE, *, max_seconds: float | None = None) -> Audio:
    """Any container FFmpeg reads (OGG/Opus, MP3, M4A, WAV, WebM, MP4 ...) → mono float32 at `sample_rate`.

    With `max_seconds`, a longer input is refused from the container's stated length before any decoding,
    and decoding stops at the limit when the container states none (or states less than it holds), so the
    time and memory a file costs are bounded by the limit, whatever the file claims.
    """
    if isinstance(data, (bytes, bytearray)) and not data:
        raise EmptyAudio()
    cap = None if max_seconds is None else int(max_seconds * sample_rate) + sample_rate // 2
    try:
        with open_input(data) as container:
            if not container.streams.audio:
                raise UnreadableAudio("That file has no sound in it.")
            stated = declared_seconds(container)
            if max_seconds is not None and stated is not None and stated > max_seconds + 0.5:
                raise AudioTooLong(stated, max_seconds)
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            chunks: list[np.ndarray] = []
            total = 0
            try:
                for frame in container.decode(stream):
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray().reshape(-1))
                        total += chunks[-1].size
                    if cap is not None and max_seconds is not None and total > cap:
                        raise AudioTooLong(None, max_seconds)
            except av.error.FFmpegError:
                # a truncated upload: keep what decoded, refuse only if nothing did
                if not chunks:
                    raise
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except (UnreadableAudio, AudioTooLong):
        raise
    except (av.error.FFmpegError, ValueError, IndexError, OSError) as exc:
        raise UnreadableAudio(detail=repr(exc)) from exc
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if samples.size < sample_rate // 20:
        raise UnreadableAudio(detail="decoded less than 50 ms of audio")
    return Audio(np.clip(samples, -1.0, 1.0), sample_rate)


def resample(audio: Audio, rate: int) -> Audio:
    if audio.sample_rate == rate:
        return audio
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    frame = _frame(audio)
    parts = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return Audio(np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32), rate)


def _frame(audio: Audio) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio.samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = audio.sample_rate
    return frame


def encode_ogg_opus(audio: Audio, bitrate: int = 48_000) -> bytes:
    """A voice note: Opus in Ogg, mono, 48 kHz — what Telegram's sendVoice and Discord voice messages expect."""
    audio = resample(audio, OPUS_RATE)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=OPUS_RATE, layout="mono")
        stream.bit_rate = bitrate
        pcm = (np.clip(audio.samples, -1, 1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = OPUS_RATE
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def encode_wav(audio: Audio) -> bytes:
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(audio.sample_rate)
        w.writeframes((np.clip(audio.samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def probe(data: Source) -> dict[str, Any]:
    """Container, codecs and duration of an upload, for checks and for Discord's duration_secs."""
    if isinstance(data, (bytes, bytearray)) and not data:
        raise EmptyAudio()
    try:
        with open_input(data) as c:
            audio = c.streams.audio[0] if c.streams.audio else None
            video = c.streams.video[0] if c.streams.video else None
            seconds = declared_seconds(c)
            return {
                "format": c.format.name,
                "audio_codec": audio.codec_context.name if audio else None,
                "audio_rate": audio.codec_context.sample_rate if audio else None,
                "video_codec": video.codec_context.name if video else None,
                "width": video.codec_context.width if video else None,
                "height": video.codec_context.height if video else None,
                "fps": float(video.average_rate) if video and video.average_rate else None,
                "seconds": seconds,
            }
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise UnreadableAudio(detail=repr(exc)) from exc
