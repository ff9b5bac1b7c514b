"""Collecting a pipeline run into what a chat sends: the text so far, the voice note, the video.

Channels feed frames in order and ask what is ready; the encoding (OGG/Opus, waveform) lives here once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core import audio as audio_ops
from core.types import Audio, AudioFrame, Frame, NoteFrame, ReplyDone, SentenceFrame, TranscriptFrame, VideoFrame


@dataclass
class ReplyAssembler:
    transcript: str = ""
    sentences: list[str] = field(default_factory=list)
    chunks: list[Audio] = field(default_factory=list)
    video: VideoFrame | None = None
    done: ReplyDone | None = None
    notes: list[str] = field(default_factory=list)  # e.g. a sentence spoken in the base voice; shown after the text

    def feed(self, frame: Frame) -> None:
        if isinstance(frame, TranscriptFrame):
            self.transcript = frame.transcript.text
        elif isinstance(frame, SentenceFrame):
            self.sentences.append(frame.text)
        elif isinstance(frame, AudioFrame):
            self.chunks.append(frame.audio)
        elif isinstance(frame, VideoFrame):
            self.video = frame
        elif isinstance(frame, NoteFrame):
            self.notes.append(frame.text)
        elif isinstance(frame, ReplyDone):
            self.done = frame

    @property
    def text(self) -> str:
        return self.done.text if self.done is not None else " ".join(self.sentences)

    @property
    def has_speech(self) -> bool:
        return bool(self.chunks)

    def speech(self) -> Audio:
        return audio_ops.join(self.chunks)

    def voice_note(self) -> tuple[bytes, float]:
        """The whole spoken answer as an OGG/Opus voice note and its length in seconds."""
        from adapters.media import encode_ogg_opus

        speech = self.speech()
        return encode_ogg_opus(speech), speech.seconds

    def waveform(self, points: int = 256) -> bytes:
        return audio_ops.waveform_bytes(self.speech(), points)


def split_text(text: str, limit: int) -> list[str]:
    """Cut a long answer into messages a platform accepts, at paragraph, line or word ends where possible."""
    text = text.strip()
    parts: list[str] = []
    while len(text) > limit:
        cut = max(text.rfind(sep, 0, limit) for sep in ("\n\n", "\n", ". ", " "))
        if cut <= limit // 2:
            cut = limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        parts.append(text)
    return parts
