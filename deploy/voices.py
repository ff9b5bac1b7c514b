"""Voice conversion as a Serve deployment, one model per voice loaded on demand (Serve model multiplexing).

A request names its voice by `voice_model_id`; Serve sends it to a replica that has that voice loaded when there
is one, and a replica keeps its `max_models_per_replica` most recently used voices: N voices share M replicas.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from ray import serve

from core.errors import EngineError
from core.types import Audio, FallbackAudio, Voice, VoiceEngine
from deploy.wire import carry, replica_settings

if TYPE_CHECKING:
    from RVC.service import VoiceService


def voice_model_id(voice: Voice) -> str:
    """The voice and the exact model it serves: a retrained or restored version is another id, loaded afresh."""
    digest = hashlib.sha256(json.dumps([voice.engine.value, voice.params], sort_keys=True, default=str).encode()).hexdigest()
    return f"{voice.name}:{digest[:12]}"


class LoadedVoice:
    """One voice's model held by this replica. Serve calls __del__ when it drops the voice as least recently used."""

    def __init__(self, service: VoiceService, voice: Voice, on_unload: Callable[[], None]) -> None:
        self.service, self.voice = service, voice
        self._on_unload: Callable[[], None] | None = on_unload
        engine = service.engine(voice.engine.value)
        if voice.engine is VoiceEngine.LITE:
            from RVC.engines.lite import LiteEngine

            if not voice.params.get("artifact"):
                raise EngineError("This voice has no trained model yet; train it first.")
            assert isinstance(engine, LiteEngine)
            engine.voice(voice.params["artifact"])
        elif voice.engine is VoiceEngine.RVC:
            from RVC.engines.rvc import RvcEngine, RvcParams

            assert isinstance(engine, RvcEngine)
            params = RvcParams.from_params(voice.params)
            engine.loaded(params.model)  # RVC models also stay under the engine's own cap (RVC/engines/rvc.py)
            if params.index:
                engine.index(params.index)

    def __del__(self) -> None:
        if self._on_unload is not None:
            unload, self._on_unload = self._on_unload, None
            if self.voice.engine is VoiceEngine.LITE:
                from RVC.engines.lite import LiteEngine

                lite = self.service.engine("lite")
                assert isinstance(lite, LiteEngine)
                lite.forget(self.voice.params["artifact"])
            unload()


@serve.deployment
class VoiceConversion:
    def __init__(self, settings: dict[str, Any], max_models_per_replica: int) -> None:
        import ray

        from RVC.client import InProcessWorker, WorkerConverter
        from RVC.service import ServiceConfig, VoiceService

        s = replica_settings(settings)
        device = "cuda" if ray.get_gpu_ids() else "cpu"
        self.service = VoiceService(ServiceConfig(s.cache_dir, s.rvc_models_dir, s.threads, device=device))
        self.converter = WorkerConverter(InProcessWorker(self.service))  # the speech check runs here, beside the model
        self.asked: dict[str, Voice] = {}
        self.loaded: list[str] = []
        self.loads = 0

        async def load(model_id: str) -> LoadedVoice:  # a plain function: Serve keeps its model cache on the function it wraps
            return await self._load(model_id)

        self.voice_model = serve.multiplexed(max_num_models_per_replica=max_models_per_replica)(load)

    async def _load(self, model_id: str) -> LoadedVoice:
        voice = self.asked[model_id]
        loaded = await asyncio.to_thread(LoadedVoice, self.service, voice, lambda: self.loaded.remove(model_id))
        self.loaded.append(model_id)
        self.loads += 1
        return loaded

    async def convert(self, samples: np.ndarray, rate: int, name: str, engine: str, language: str,
                      params: dict[str, Any]) -> tuple[np.ndarray, int, str]:
        """The sentence in the voice, and a note when it fell back to the base voice ("" otherwise)."""
        try:
            voice = Voice(name, VoiceEngine(engine), language, True, params)
            model_id = serve.get_multiplexed_model_id()
            self.asked[model_id] = voice
            await self.voice_model(model_id)
            out = await self.converter.convert(Audio(samples, rate), voice)
            return out.samples, out.sample_rate, out.note if isinstance(out, FallbackAudio) else ""
        except Exception as exc:
            raise carry(exc) from None

    async def preview(self, name: str, engine: str, language: str, params: dict[str, Any], text: str) -> tuple[np.ndarray, int]:
        """`text` in a voice that is not stored yet (a new model on trial): loaded for this call only, outside the
        multiplexed cache, since its files move once it passes."""
        try:
            out = await self.converter.preview(Voice(name, VoiceEngine(engine), language, False, params), text)
            return out.samples, out.sample_rate
        except Exception as exc:
            raise carry(exc) from None

    def describe(self) -> dict[str, Any]:
        """Which voices this replica holds now, and how many loads it has made (tests, `doppel engines status`)."""
        return {"replica": serve.get_replica_context().replica_id.unique_id, "pid": os.getpid(),
                "loaded": list(self.loaded), "loads": self.loads, "device": self.service.device}
