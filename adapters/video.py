"""Video in and out with PyAV's bundled FFmpeg: MP4 (H.264 + AAC) for any chat, the Telegram video-note form, frame decoding.

Frames are RGB uint8 arrays (H, W, 3). Audio is the project's `Audio`; the encoder pads or trims it to the
frames' length so sound and picture end together.
"""
from __future__ import annotations

import itertools
import os
import re
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Iterable, Iterator

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from adapters.media import Source, declared_seconds, open_input, resample
from core.errors import BadInput, UnreadableAudio
from core.types import Audio

if TYPE_CHECKING:
    from av.audio.stream import AudioStream
    from av.container import InputContainer, OutputContainer
    from av.video.stream import VideoStream

AAC_RATE = 48_000
# Telegram refuses a video note whose side is 640 or more, or that runs past a minute
VIDEO_NOTE_MAX_SIDE = 639
VIDEO_NOTE_MAX_SECONDS = 60.0


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def encode_mp4(frames: Iterable[np.ndarray], fps: float, audio: Audio | None = None, *, crf: int = 23,
               preset: str = "veryfast", cues: Iterable[Cue] = ()) -> bytes:
    """Frames (+ audio) → MP4 with H.264 (yuv420p, faststart) and AAC, playable by Telegram, Discord and browsers."""
    cue_list = list(cues)
    # faststart (the index before the data, so a chat can play while downloading) rewrites the file: needs a real one
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.mp4")
        _encode_to(path, frames, fps, audio, crf, preset, cue_list)
        with open(path, "rb") as f:
            return f.read()


def _encode_to(path: str, frames: Iterable[np.ndarray], fps: float, audio: Audio | None, crf: int, preset: str,
               cue_list: list[Cue]) -> int:
    count = 0
    with av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        vstream = None
        for frame in frames:
            if vstream is None:
                h, w = frame.shape[:2]
                if h % 2 or w % 2:
                    raise BadInput("H.264 needs even frame sides")
                vstream = container.add_stream("libx264", rate=_rate(fps))
                vstream.width, vstream.height, vstream.pix_fmt = w, h, "yuv420p"
                vstream.options = {"crf": str(crf), "preset": preset}
                astream = _add_audio(container) if audio is not None else None
            if cue_list:
                frame = burn_caption(frame, _cue_at(cue_list, count / fps))
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, dtype=np.uint8), format="rgb24")
            vf.pts = count
            for packet in vstream.encode(vf):
                container.mux(packet)
            count += 1
        if vstream is None:
            raise BadInput("A video needs at least one frame.")
        for packet in vstream.encode(None):
            container.mux(packet)
        if audio is not None and astream is not None:
            _write_audio(container, astream, audio, count / fps)
    return count


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def _add_audio(container: OutputContainer) -> AudioStream:
    stream = container.add_stream("aac", rate=AAC_RATE, layout="mono")
    stream.bit_rate = 96_000
    return stream


def _write_audio(container: OutputContainer, stream: AudioStream, audio: Audio, seconds: float) -> None:
    pcm = resample(audio, AAC_RATE).samples
    n = int(round(seconds * AAC_RATE))
    # pad or trim to the picture's length: a longer track would keep a frozen last frame on screen
    pcm = np.pad(pcm, (0, max(0, n - pcm.size)))[:n]
    frame = av.AudioFrame.from_ndarray(np.clip(pcm, -1, 1).astype(np.float32).reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = AAC_RATE
    frame.pts = 0
    for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


# how a round video note frames a face: the circle is this many face widths across (head and shoulders, the
# face half its height: a chat shows the circle small), and the face box's centre (about the nose) sits this
# far down it, so the circle does not cut the hair
NOTE_FACE_WIDTHS = 2.0
NOTE_FACE_HEIGHT = 0.47


def square(frame: np.ndarray, side: int, box: tuple[int, int, int] | None = None) -> np.ndarray:
    """Crop to a square (`box` = x, y, size; else the centre) and scale to `side` (what a round video note shows)."""
    h, w = frame.shape[:2]
    if box is None:
        s = min(h, w)
        y, x = (h - s) // 2, (w - s) // 2
    else:
        x, y, s = box
    crop = frame[y:y + s, x:x + s]
    if s == side:
        return crop
    return np.asarray(Image.fromarray(crop).resize((side, side), Image.Resampling.BILINEAR))


def face_square(face: tuple[int, int, int, int], h: int, w: int) -> tuple[int, int, int]:
    """The square (x, y, size) a video note shows of an h×w picture: head and shoulders around `face`
    (x0, y0, x1, y1), kept inside the picture; as large as the picture allows when the face is close."""
    fx0, fy0, fx1, fy1 = face
    size = int(min(h, w, max(16, NOTE_FACE_WIDTHS * (fx1 - fx0))))
    cx, cy = (fx0 + fx1) / 2, (fy0 + fy1) / 2
    x = int(np.clip(round(cx - size / 2), 0, w - size))
    y = int(np.clip(round(cy - NOTE_FACE_HEIGHT * size), 0, h - size))
    return x, y, size


def find_face(frames: Iterable[np.ndarray]) -> tuple[int, int, int, int] | None:
    """The median box of the largest face over a few frames (one fixed framing: no jitter), or None."""
    from geneface.landmarks import detect

    # detection at up to 640 px: a head-to-knees shot's face is too small for dlib at less
    boxes = [faces[0].box for faces in (detect(f, max_side=640) for f in frames) if faces]
    if not boxes:
        return None
    left, top, right, bottom = (int(v) for v in np.median(np.array(boxes), axis=0))
    return left, top, right, bottom


def encode_video_note(frames: Iterable[np.ndarray], fps: float, audio: Audio | None = None, *, side: int = 512,
                      cues: Iterable[Cue] = (), box: tuple[int, int, int] | None = None) -> bytes:
    """Telegram's round video: square (`box` of each frame, else the centre), side < 640, at most 60 s."""
    if not 16 <= side <= VIDEO_NOTE_MAX_SIDE or side % 2:
        raise BadInput(f"A video note's side must be even and between 16 and {VIDEO_NOTE_MAX_SIDE} px.")
    limit = int(VIDEO_NOTE_MAX_SECONDS * fps)

    def cut() -> Iterator[np.ndarray]:
        for i, f in enumerate(frames):
            if i >= limit:
                return
            yield square(f, side, box)

    if audio is not None and audio.seconds > VIDEO_NOTE_MAX_SECONDS:
        audio = Audio(audio.samples[: int(VIDEO_NOTE_MAX_SECONDS * audio.sample_rate)], audio.sample_rate)
    return encode_mp4(cut(), fps, audio, cues=cues)


def to_video_note(mp4: bytes, side: int = 512, *, frame_face: bool = True) -> bytes:
    """Any video → the video-note form, keeping its sound; framed on the face (head and shoulders fill the
    circle) when one is found in its first seconds, else the centre square."""
    from adapters.media import decode_audio

    info = read_info(mp4)
    try:
        audio = decode_audio(mp4, AAC_RATE)
    except UnreadableAudio:
        audio = None
    box = None
    if frame_face:
        step = max(1, int(round(info.fps)))
        sample = itertools.islice(read_frames(mp4), 0, int(2 * info.fps) + 1, step)  # one a second, the first 2 s
        face = find_face(sample)
        if face is not None:
            box = face_square(face, info.height, info.width)
    return encode_video_note(read_frames(mp4), info.fps, audio, side=side, box=box)


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    seconds: float
    frames: int
    has_audio: bool


def read_info(data: Source, *, measure_up_to: float | None = None) -> VideoInfo:
    """What the container says about the video. Where it states no length (a browser's WebM recording), the
    length is measured from the packets' timestamps, without decoding, up to `measure_up_to` seconds."""
    try:
        with open_input(data) as c:
            if not c.streams.video:
                raise UnreadableAudio("That file has no video in it.")
            v = c.streams.video[0]
            fps = float(v.average_rate or v.guessed_rate or 0) or 25.0
            seconds = declared_seconds(c) or 0.0
            if not seconds and measure_up_to:
                seconds = _measure(c, v, measure_up_to)
            frames = v.frames or int(round(seconds * fps))
            return VideoInfo(v.codec_context.width, v.codec_context.height, fps, seconds, frames, bool(c.streams.audio))
    except (av.error.FFmpegError, OSError) as exc:
        raise UnreadableAudio("I could not read that video.", detail=repr(exc)) from exc


def _measure(container: InputContainer, stream: VideoStream, up_to: float) -> float:
    last = 0.0
    for packet in container.demux(stream):
        if packet.pts is not None and packet.time_base:
            last = max(last, float((packet.pts + (packet.duration or 0)) * packet.time_base))
            if last > up_to:
                break
    return last


def read_frames(data: Source, *, max_side: int | None = None, fps: float | None = None) -> Iterator[np.ndarray]:
    """Decode RGB frames; `max_side` scales down, `fps` resamples the rate by dropping or repeating frames."""
    try:
        with open_input(data) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            next_t = 0.0
            for frame in c.decode(stream):
                if max_side and max(frame.width, frame.height) > max_side:
                    scale = max_side / max(frame.width, frame.height)
                    # even sides keep the frames encodable as H.264 later
                    frame = frame.reformat(width=int(frame.width * scale) // 2 * 2, height=int(frame.height * scale) // 2 * 2)
                image = frame.to_ndarray(format="rgb24")
                if fps is None:
                    yield image
                    continue
                t = float(frame.time or 0.0)
                while next_t <= t + 1e-6:
                    yield image
                    next_t += 1.0 / fps
    except (av.error.FFmpegError, OSError) as exc:
        raise UnreadableAudio("I could not read that video.", detail=repr(exc)) from exc


# ---- burned-in subtitles ----


def _is_wide(ch: str) -> bool:
    return "\u2e80" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" or "\uff00" <= ch <= "\uffef"


def _width(text: str) -> int:
    return sum(2 if _is_wide(c) else 1 for c in text)


def timed_cues(text: str, seconds: float, max_chars: int = 42) -> list[Cue]:
    """Spread the answer over the clip in short lines, each shown for a time in proportion to its length.
    Chinese, Japanese and Korean characters are each a word (no spaces between them), and twice as wide."""
    words = re.findall(r"[\u2e80-\u9fff\uac00-\ud7af\uff00-\uffef]|[^\s\u2e80-\u9fff\uac00-\ud7af\uff00-\uffef]+", text)
    lines: list[str] = []
    for w in words:
        glue = "" if not lines or _is_wide(w[0]) or _is_wide(lines[-1][-1]) else " "
        if lines and _width(lines[-1]) + len(glue) + _width(w) <= max_chars:
            lines[-1] += glue + w
        else:
            lines.append(w)
    total = sum(len(line) for line in lines) or 1
    cues, t = [], 0.0
    for line in lines:
        d = seconds * len(line) / total
        cues.append(Cue(t, t + d, line))
        t += d
    return cues


def _cue_at(cues: list[Cue], t: float) -> str:
    for cue in cues:
        if cue.start <= t < cue.end:
            return cue.text
    return ""


_FONTS: dict[int, ImageFont.FreeTypeFont] = {}


def caption_font(size: int) -> ImageFont.FreeTypeFont:
    """Noto Sans CJK (SC) from the noto-cjk-sans-otc wheel: Chinese, Japanese, Korean, Cyrillic, Greek and
    accented Latin in one face (Pillow's built-in font draws boxes for most of them)."""
    if size not in _FONTS:
        from noto_cjk_sans_otc import FONT_PATH

        _FONTS[size] = ImageFont.truetype(str(FONT_PATH), size, index=2)  # the collection's SC face
    return _FONTS[size]


def burn_caption(frame: np.ndarray, text: str) -> np.ndarray:
    if not text:
        return frame
    h, w = frame.shape[:2]
    size = max(12, h // 22)
    font = caption_font(size)
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    box = draw.textbbox((0, 0), text, font=font)
    x = max(4, (w - (box[2] - box[0])) // 2)
    y = h - (box[3] - box[1]) - h // 12
    draw.text((x, y), text, font=font, fill=(255, 255, 255), stroke_width=max(1, size // 10), stroke_fill=(0, 0, 0))
    return np.asarray(image)
