"""Talking-head rendering as a Serve deployment, one engine per avatar loaded on demand (Serve model multiplexing).

The GPU a replica renders on is the one Ray gives it (`num_gpus` in the deployment's ray_actor_options).
GeneFace++ avatars are not rendered here: they have their own render containers per GPU (geneface/docker_engine.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncio
import hashlib
import os

import numpy as np
from ray import serve

from core.errors import EngineError
from core.types import Audio
from deploy.wire import carry, replica_settings

if TYPE_CHECKING:
    from geneface.lite.render import LiteAvatar
    from geneface.photo import PhotoAvatar

ENGINES = ("photo", "lite")


def avatar_model_id(name: str, artifact_path: str) -> str:
    return f"{name}:{hashlib.sha256(artifact_path.encode()).hexdigest()[:12]}"


@serve.deployment
class AvatarRendering:
    def __init__(self, settings: dict[str, Any], max_models_per_replica: int) -> None:
        import ray

        self.subtitles = replica_settings(settings).avatar_subtitles
        self.gpu = 0 if ray.get_gpu_ids() else None  # Ray sets CUDA_VISIBLE_DEVICES to the replica's GPU
        self.asked: dict[str, tuple[str, str]] = {}
        self.loads: list[str] = []  # every avatar this replica has loaded, in order

        async def load(model_id: str) -> PhotoAvatar | LiteAvatar:  # a plain function: Serve keeps its model cache on the function it wraps
            return await self._load(model_id)

        self.avatar_model = serve.multiplexed(max_num_models_per_replica=max_models_per_replica)(load)

    async def _load(self, model_id: str) -> PhotoAvatar | LiteAvatar:
        engine, path = self.asked[model_id]
        loaded: PhotoAvatar | LiteAvatar
        if engine == "photo":
            from geneface.photo import PhotoAvatar

            loaded = await asyncio.to_thread(PhotoAvatar, path)
        elif engine == "lite":
            from geneface.lite.render import LiteAvatar

            loaded = await asyncio.to_thread(LiteAvatar, path, gpu=self.gpu)
        else:
            raise EngineError(f"Avatars of the '{engine}' engine are not rendered by the Ray deployment.")
        self.loads.append(model_id)
        return loaded

    async def render(self, samples: np.ndarray, rate: int, engine: str, artifact_path: str, text: str) -> bytes:
        try:
            model_id = serve.get_multiplexed_model_id()
            self.asked[model_id] = (engine, artifact_path)
            avatar = await self.avatar_model(model_id)
            return await asyncio.to_thread(avatar.render, Audio(samples, rate), text, self.subtitles)
        except Exception as exc:
            raise carry(exc) from None

    def describe(self) -> dict[str, Any]:
        return {"replica": serve.get_replica_context().replica_id.unique_id, "pid": os.getpid(), "gpu": self.gpu,
                "loads": list(self.loads)}
