"""Video in and out with PyAV's bundled FFmpeg: MP4 (H.264 + AAC) for any chat, the Telegram video-note form, frame decoding.

Frames are RGB uint8 arrays (H, W, 3). Audio is the project's `Audio`; the encoder pads or trims it to the
frames' length so sound and picture end together.
"""
from __future__ import annotations

import io
import itertools
import os
import tempfile
from dataclasses import dataclass
from typing import Iterable, Iterator

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from adapters.media import resample
from core.errors import BadInput, UnreadableAudio
from core.types import Audio

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
        if audio is not None:
            _write_audio(container, astream, audio, count / fps)
    return count


def _rate(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)


def _add_audio(container):
    stream = container.add_stream("aac", rate=AAC_RATE, layout="mono")
    stream.bit_rate = 96_000
    return stream


def _write_audio(container, stream, audio: Audio, seconds: float) -> None:
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


# how a round video note frames a face: the circle is this many face widths across (head and shoulders),
# and the face box's centre (about the nose) sits this far down it, so the circle does not cut the hair
NOTE_FACE_WIDTHS = 2.6
NOTE_FACE_HEIGHT = 0.48


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
    return np.asarray(Image.fromarray(crop).resize((side, side), Image.BILINEAR))


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
    return tuple(int(v) for v in np.median(np.array(boxes), axis=0))


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


def read_info(data: bytes) -> VideoInfo:
    try:
        with av.open(io.BytesIO(data), mode="r") as c:
            if not c.streams.video:
                raise UnreadableAudio("That file has no video in it.")
            v = c.streams.video[0]
            fps = float(v.average_rate or v.guessed_rate or 0) or 25.0
            seconds = float(c.duration / av.time_base) if c.duration else (float(v.duration * v.time_base) if v.duration else 0.0)
            frames = v.frames or int(round(seconds * fps))
            return VideoInfo(v.codec_context.width, v.codec_context.height, fps, seconds, frames, bool(c.streams.audio))
    except av.error.FFmpegError as exc:
        raise UnreadableAudio("I could not read that video.", detail=repr(exc)) from exc


def read_frames(data: bytes, *, max_side: int | None = None, fps: float | None = None) -> Iterator[np.ndarray]:
    """Decode RGB frames; `max_side` scales down, `fps` resamples the rate by dropping or repeating frames."""
    try:
        with av.open(io.BytesIO(data), mode="r") as c:
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
    except av.error.FFmpegError as exc:
        raise UnreadableAudio("I could not read that video.", detail=repr(exc)) from exc


# ---- burned-in subtitles ----


def timed_cues(text: str, seconds: float, max_chars: int = 42) -> list[Cue]:
    """Spread the answer over the clip in short lines, each shown for a time in proportion to its length."""
    words = text.split()
    lines: list[str] = []
    for w in words:
        if lines and len(lines[-1]) + 1 + len(w) <= max_chars:
            lines[-1] += " " + w
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


_FONTS: dict[int, ImageFont.ImageFont] = {}


def burn_caption(frame: np.ndarray, text: str) -> np.ndarray:
    if not text:
        return frame
    h, w = frame.shape[:2]
    size = max(12, h // 22)
    font = _FONTS.get(size) or _FONTS.setdefault(size, ImageFont.load_default(size=size))
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    box = draw.textbbox((0, 0), text, font=font)
    x = max(4, (w - (box[2] - box[0])) // 2)
    y = h - (box[3] - box[1]) - h // 12
    draw.text((x, y), text, font=font, fill=(255, 255, 255), stroke_width=max(1, size // 10), stroke_fill=(0, 0, 0))
    return np.asarray(image)
