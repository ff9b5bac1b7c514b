"""The ports core/ports.py defines, implemented by calls to the engine deployments' Serve handles.

Audio goes as numpy samples and a rate; what comes back from the object store is read-only, so it is copied.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, AsyncGenerator, Sequence, cast

import numpy as np
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from core.errors import UnknownAvatar
from core.ports import AvatarRenderer, FaceStream, SpeechSynthesizer
from core.types import Audio, ChatMessage, FallbackAudio, LLMOptions, Transcript, Voice
from deploy.avatars import ENGINES as RAY_AVATAR_ENGINES
from deploy.avatars import avatar_model_id
from deploy.voices import voice_model_id
from deploy.wire import arrived

if TYPE_CHECKING:
    from storage.avatars import AvatarRepository


def _audio(samples: np.ndarray, rate: int) -> Audio:
    return Audio(np.array(samples, dtype=np.float32), int(rate))


class RaySpeechRecognizer:
    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self.handle = handle

    def warm_up(self) -> None:
        """The replica loaded its models when it started."""

    async def transcribe(self, audio: Audio, language: str | None = None) -> Transcript:
        try:
            transcript: Transcript = await self.handle.transcribe.remote(audio.samples, audio.sample_rate, language)
            return transcript
        except Exception as exc:
            raise arrived(exc) from exc

    async def detect_language(self, audio: Audio) -> dict[str, float]:
        try:
            scores: dict[str, float] = await self.handle.detect_language.remote(audio.samples, audio.sample_rate)
            return scores
        except Exception as exc:
            raise arrived(exc) from exc

    def language_probability(self, audio: Audio, language: str) -> float | None:
        """Blocking, like the local recognizer's (callers run it in a thread)."""
        try:
            probability: float | None = self.handle.language_probability.remote(audio.samples, audio.sample_rate, language).result()
            return probability
        except Exception as exc:
            raise arrived(exc) from exc


class RayChatModel:
    def __init__(self, handle: DeploymentHandle[Any], info: dict[str, Any]) -> None:
        self.handle = handle
        self.name = f"ray:{info['name']}"
        self.context_tokens: int | None = info.get("context_tokens")

    def warm_up(self) -> None:
        """The replica loaded its model when it started."""

    async def aclose(self) -> None:
        """Nothing held here: the replica keeps the model's connections."""

    async def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncGenerator[str, None]:
        # a streaming call: each piece arrives as the replica's model writes it, so the pipeline's splitter closes the
        # first sentence (and it is spoken) while the model is still writing the rest
        response = cast(DeploymentResponseGenerator[str], self.handle.options(stream=True).stream.remote(
            [(m.role, m.content) for m in messages], options.temperature, options.max_tokens))
        finished = False
        try:
            async for piece in response:
                yield piece
            finished = True
        except Exception as exc:
            finished = True
            raise arrived(exc) from exc
        finally:
            if not finished:  # the reply stopped listening (enough sentences, cancelled): the replica stops writing
                response.cancel()


class RaySpeechSynthesizer:
    def __init__(self, handle: DeploymentHandle[Any], synthesizers: Sequence[SpeechSynthesizer]) -> None:
        self.handle = handle
        # the same synthesizers the replicas run, unloaded: they answer which languages are spoken without a call
        self.synthesizers = list(synthesizers)

    def supports(self, language: str) -> bool:
        return any(s.supports(language) for s in self.synthesizers)

    def warm_up(self) -> None:
        """The replica loaded its first voice when it started; the others load on their language's first sentence."""

    async def synthesize(self, text: str, language: str) -> Audio:
        try:
            samples, rate = await self.handle.synthesize.remote(text, language)
        except Exception as exc:
            raise arrived(exc) from exc
        return _audio(samples, rate)


class RayVoiceConverter:
    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self.handle = handle

    async def convert(self, audio: Audio, voice: Voice) -> Audio:
        try:
            samples, rate, note = await self.handle.options(multiplexed_model_id=voice_model_id(voice)).convert.remote(
                audio.samples, audio.sample_rate, voice.name, voice.engine.value, voice.language, dict(voice.params))
        except Exception as exc:
            raise arrived(exc) from exc
        out = _audio(samples, rate)
        return FallbackAudio(out.samples, out.sample_rate, note=note) if note else out

    async def preview(self, voice: Voice, text: str) -> Audio:
        try:
            samples, rate = await self.handle.preview.remote(voice.name, voice.engine.value, voice.language,
                                                              dict(voice.params), text)
        except Exception as exc:
            raise arrived(exc) from exc
        return _audio(samples, rate)

    async def close(self) -> None:
        """Nothing to stop here: the replicas belong to the cluster."""


class RayAvatarRenderer:
    """Photo and lite avatars render on the AvatarRendering deployment; GeneFace++ ones in their own containers
    through `local` (geneface.renderer.AvatarStudio), which also answers whether an avatar is ready."""

    def __init__(self, avatars: AvatarRepository, handle: DeploymentHandle[Any], local: AvatarRenderer) -> None:
        self.avatars, self.handle, self.local = avatars, handle, local

    async def is_ready(self, avatar: str) -> bool:
        return await self.local.is_ready(avatar)

    async def face_stream(self, avatar: str, size: int) -> FaceStream | None:
        """None: a live face is drawn frame by frame beside the call, and these avatars render on the cluster."""
        return None

    async def render(self, audio: Audio, avatar: str, text: str = "") -> bytes:
        record = await self.avatars.get(avatar)
        if not record.ready:
            raise UnknownAvatar(f"The avatar '{avatar}' is still being trained. Please try again later.")
        if record.engine not in RAY_AVATAR_ENGINES:
            return await self.local.render(audio, avatar, text)
        try:
            mp4: bytes = await self.handle.options(multiplexed_model_id=avatar_model_id(record.name, record.artifact_path)).render.remote(
                audio.samples, audio.sample_rate, record.engine, record.artifact_path, text)
            return mp4
        except Exception as exc:
            raise arrived(exc) from exc
