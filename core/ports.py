"""Ports: what the pipeline needs from the outside world. Adapters implement them; core never imports an adapter."""
from __future__ import annotations

from typing import AsyncIterator, Collection, Protocol, Sequence, runtime_checkable

from core.types import (
    Audio,
    ChatMessage,
    ConversationKey,
    Job,
    JobStatus,
    LLMOptions,
    Transcript,
    Voice,
)


@runtime_checkable
class SpeechRecognizer(Protocol):
    async def transcribe(self, audio: Audio, language: str | None = None) -> Transcript:
        """language=None means detect it."""
        ...

    async def detect_language(self, audio: Audio) -> dict[str, float]:
        """How likely the speech is in each language: code → probability."""
        ...


@runtime_checkable
class LanguageDetector(Protocol):
    """The language of typed text."""

    def scores(self, text: str, languages: Collection[str] = ()) -> dict[str, float]:
        """code → confidence among `languages` (empty: all it knows); empty when the text gives no clue."""
        ...


@runtime_checkable
class ChatModel(Protocol):
    name: str

    def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncIterator[str]:
        """Yield the answer in pieces (tokens or deltas) as the model writes it."""
        ...


@runtime_checkable
class SpeechSynthesizer(Protocol):
    def supports(self, language: str) -> bool: ...

    async def synthesize(self, text: str, language: str) -> Audio: ...


@runtime_checkable
class VoiceConverter(Protocol):
    """Turns speech of any voice into the target voice (RVC, lite, ...)."""

    async def convert(self, audio: Audio, voice: Voice) -> Audio: ...


@runtime_checkable
class AvatarRenderer(Protocol):
    async def render(self, audio: Audio, avatar: str, text: str = "") -> bytes:
        """Return an MP4 (H.264 + AAC) of the avatar speaking `audio`."""
        ...

    async def is_ready(self, avatar: str) -> bool: ...


@runtime_checkable
class HistoryStore(Protocol):
    async def load(self, key: ConversationKey, token_budget: int) -> list[ChatMessage]:
        """The newest turns of this conversation, oldest first, within the budget."""
        ...

    async def append_exchange(self, key: ConversationKey, user_text: str, assistant_text: str) -> None:
        """Store a user turn and its answer together, or neither."""
        ...

    async def reset(self, key: ConversationKey) -> int: ...


@runtime_checkable
class VoiceCatalog(Protocol):
    async def get(self, name: str) -> Voice: ...

    async def names(self) -> list[str]: ...


@runtime_checkable
class JobQueue(Protocol):
    async def submit(self, kind: str, target: str, *, engine: str, max_steps: int, gpu: int | None,
                     params: dict, notify_chat: str | None = None) -> Job: ...

    async def get(self, job_id: int) -> Job: ...

    async def list(self, statuses: Sequence[JobStatus] | None = None) -> list[Job]: ...

    async def cancel(self, job_id: int) -> Job: ...
