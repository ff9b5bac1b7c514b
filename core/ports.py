"""Ports: what the pipeline needs from the outside world. Adapters implement them; core never imports an adapter."""
from __future__ import annotations

from typing import Any, AsyncGenerator, Collection, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

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
    def warm_up(self) -> None:
        """Load the models now rather than on the first message (blocking: callers run it in a thread)."""
        ...

    async def transcribe(self, audio: Audio, language: str | None = None) -> Transcript:
        """language=None means detect it."""
        ...

    async def detect_language(self, audio: Audio) -> dict[str, float]:
        """How likely the speech is in each language: code → probability."""
        ...

    def language_probability(self, audio: Audio, language: str) -> float | None:
        """How likely `audio` is in `language`; None when this recognizer cannot tell (blocking: run it in a thread)."""
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

    @property
    def context_tokens(self) -> int | None:
        """The context window in tokens, when it is small enough to matter (a local model); None: no limit known."""
        ...

    def warm_up(self) -> None:
        """Load the model now rather than on the first message (blocking: callers run it in a thread)."""
        ...

    def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncGenerator[str, None]:
        """Yield the answer in pieces (tokens or deltas) as the model writes it."""
        ...

    async def aclose(self) -> None:
        """Let go of connections (on the event loop that used them)."""
        ...


@runtime_checkable
class SpeechSynthesizer(Protocol):
    def supports(self, language: str) -> bool: ...

    def warm_up(self) -> None:
        """Load the voice now rather than on the first sentence (blocking: callers run it in a thread)."""
        ...

    async def synthesize(self, text: str, language: str) -> Audio: ...


@runtime_checkable
class VoiceConverter(Protocol):
    """Turns speech of any voice into the target voice (RVC, lite, ...)."""

    async def convert(self, audio: Audio, voice: Voice) -> Audio: ...

    async def preview(self, voice: Voice, text: str) -> Audio:
        """`text` spoken in `voice` exactly as its model makes it (no fallback to the base voice), by whatever serves
        the voices: a new model's check before it is kept. The voice need not be stored; its files must be where
        the converter reads models."""
        ...

    async def close(self) -> None:
        """Stop the worker process, container or connection behind the converter."""
        ...


@runtime_checkable
class FaceStream(Protocol):
    """An avatar's face drawn frame by frame as it speaks (live talk); frames are RGB uint8 arrays."""

    @property
    def seconds(self) -> float:
        """Audio fed since the last reset."""
        ...

    @property
    def frames_made(self) -> int: ...

    def stream(self, audio: Audio, pose: int | None = None) -> Iterator[np.ndarray]:
        """The frames for `audio`, drawn as they are read; `pose`: the idle motion's frame number to start from."""
        ...

    def idle(self, pose: int | None = None) -> np.ndarray:
        """The next frame with nobody speaking."""
        ...

    def reset(self) -> None:
        """Forget the speech so far (after an interruption)."""
        ...


@runtime_checkable
class AvatarRenderer(Protocol):
    async def render(self, audio: Audio, avatar: str, text: str = "") -> bytes:
        """Return an MP4 (H.264 + AAC) of the avatar speaking `audio`."""
        ...

    async def is_ready(self, avatar: str) -> bool: ...

    async def face_stream(self, avatar: str, size: int) -> FaceStream | None:
        """The avatar's face for live talk, `size` px on its longer side; None when this renderer draws no live faces.
        Raises a DoppelError saying why when this avatar cannot talk live."""
        ...


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
                     params: dict[str, Any], notify_chat: str | None = None) -> Job: ...

    async def get(self, job_id: int) -> Job: ...

    async def list(self, statuses: Sequence[JobStatus] | None = None) -> list[Job]: ...

    async def cancel(self, job_id: int) -> Job: ...
