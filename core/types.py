"""Domain types and the frames that move through the reply pipeline."""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class Audio:
    """Mono float32 samples in [-1, 1] at a known rate."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        if self.samples.ndim != 1:
            raise ValueError("Audio must be mono")

    @property
    def seconds(self) -> float:
        return len(self.samples) / float(self.sample_rate)

    @staticmethod
    def silence(seconds: float, sample_rate: int) -> "Audio":
        return Audio(np.zeros(int(seconds * sample_rate), dtype=np.float32), sample_rate)


@dataclass(frozen=True)
class FallbackAudio(Audio):
    """Speech in the base voice, sent instead of a converted sentence that was not speech; `note` says why."""

    note: str = ""


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    audio_seconds: float = 0.0
    # (start, end, text) in seconds, for subtitles
    segments: tuple[tuple[float, float, str], ...] = ()
    # how sure the recognizer was (Whisper: mean token log-probability, probability of no speech); None: unknown
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    # the recognizer's mean probability of the words it wrote (1.0 when it does not say)
    confidence: float = 1.0


Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class ConversationKey:
    """History is kept per user *and* chat: the same person in two chats has two histories."""

    user_id: str
    chat_id: str


@dataclass(frozen=True)
class Persona:
    name: str
    system_prompt: str  # the text in the persona's own language (English for an `auto` persona)
    language: str = "en"  # what it answers in; "auto": the user's language
    max_sentences: int = 3
    max_tokens: int = 160
    voice: str | None = None
    avatar: str | None = None
    # the same persona written in other languages: language code → text
    prompts: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class LLMOptions:
    temperature: float = 0.7
    max_tokens: int = 160


class VoiceEngine(str, enum.Enum):
    TTS = "tts"  # the base synthesizer, no conversion
    LITE = "lite"
    RVC = "rvc"
    COSYVOICE = "cosyvoice"


@dataclass(frozen=True)
class Voice:
    name: str
    engine: VoiceEngine
    language: str = "en"
    ready: bool = True
    # engine-specific: artifact path, pitch shift, index rate ...
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Avatar:
    """A face that speaks the answers, as stored (storage/avatars.py)."""

    name: str
    engine: str  # "photo" | "lite" | "geneface"
    ready: bool
    source_path: str  # the photo or video it was made from
    artifact_path: str  # what its engine loads: a prepared photo, a trained lite model, a GeneFace++ folder
    params: dict[str, Any] = field(default_factory=dict)


class JobStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass
class Job:
    id: int
    kind: str  # "avatar" | "voice"
    target: str  # the avatar or voice name
    status: JobStatus
    engine: str = "lite"
    progress: float = 0.0  # 0..1
    step: int = 0
    max_steps: int = 0
    eta_seconds: float | None = None
    gpu: int | None = None
    message: str = ""
    log_tail: str = ""
    notify_chat: str | None = None


# ---- frames: what the pipeline yields, in order ----


@dataclass(frozen=True)
class Frame:
    created: float = field(default_factory=time.monotonic, kw_only=True)


@dataclass(frozen=True)
class TranscriptFrame(Frame):
    transcript: Transcript


@dataclass(frozen=True)
class SentenceFrame(Frame):
    """One sentence of the answer text, as soon as the splitter closes it."""

    index: int
    text: str


@dataclass(frozen=True)
class AudioFrame(Frame):
    """The spoken form of sentence `index`, in the reply voice."""

    index: int
    text: str
    audio: Audio


@dataclass(frozen=True)
class NoteFrame(Frame):
    """Something the user should know about this answer (a sentence spoken in the base voice); once per answer."""

    text: str


@dataclass(frozen=True)
class SpeechDone(Frame):
    """Every sentence is written and spoken; a video, if any, is still to come. Channels send the voice now."""

    text: str


@dataclass(frozen=True)
class VideoFrame(Frame):
    """A talking-head clip (MP4 bytes) for the whole answer."""

    mp4: bytes
    seconds: float


@dataclass(frozen=True)
class VideoPartFrame(Frame):
    """The talking head of sentence `index` from `offset` seconds into its audio (MP4 bytes, its sound that
    stretch of the sentence's): sent as soon as it is drawn, so a page can show the face while the voice plays
    instead of after the whole answer."""

    index: int
    mp4: bytes
    seconds: float
    offset: float = 0.0


@dataclass(frozen=True)
class StageTiming:
    stage: str
    seconds: float


@dataclass(frozen=True)
class ReplyDone(Frame):
    """The last frame: the whole answer and how long each stage took."""

    text: str
    timings: tuple[StageTiming, ...]
    user_language: str = ""  # what the user wrote or spoke
    language: str = ""  # what the answer was written and spoken in
    notice_given: bool = False  # the answer starts by saying the model cannot write the user's language
    unspoken_notice_given: bool = False  # the answer came in text with a note that no voice here speaks its language

    def timing(self, stage: str) -> float | None:
        for t in self.timings:
            if t.stage == stage:
                return t.seconds
        return None
