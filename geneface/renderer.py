"""The AvatarRenderer the pipeline calls: finds the avatar, loads its engine once, renders off the event loop."""
from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from core.errors import EngineError, UnknownAvatar
from core.ports import FaceStream
from core.types import Audio, Avatar
from storage.avatars import AvatarRepository

if TYPE_CHECKING:
    from geneface.docker_engine import GeneFaceDocker
    from geneface.lite.render import LiteAvatar
    from geneface.photo import PhotoAvatar


class AvatarStudio:
    """Implements core.ports.AvatarRenderer for the photo, lite and geneface engines."""

    def __init__(self, avatars: AvatarRepository, *, gpu: int | None = None, subtitles: bool = False,
                 geneface: GeneFaceDocker | None = None, keep_loaded: int = 4) -> None:
        self.avatars = avatars
        self.gpu = gpu
        self.subtitles = subtitles
        self.geneface = geneface  # a geneface.docker_engine.GeneFaceDocker, when this server has Docker
        self._loaded: OrderedDict[tuple[str, str], PhotoAvatar | LiteAvatar] = OrderedDict()
        self._keep = keep_loaded
        self._lock = threading.Lock()

    async def is_ready(self, avatar: str) -> bool:
        found = await self.avatars.find(avatar)
        return bool(found and found.ready and (found.engine != "geneface" or self.geneface is not None))

    async def render(self, audio: Audio, avatar: str, text: str = "") -> bytes:
        record = await self.avatars.get(avatar)
        if not record.ready:
            raise UnknownAvatar(f"The avatar '{avatar}' is still being trained. Please try again later.")
        if record.engine == "geneface":
            if self.geneface is None:
                raise EngineError("GeneFace++ avatars need Docker on this server.")
            return await self.geneface.render(record, audio)
        engine = await asyncio.to_thread(self._engine, record)
        mp4: bytes = await asyncio.to_thread(engine.render, audio, text, self.subtitles)
        return mp4

    async def face_stream(self, avatar: str, size: int = 512) -> FaceStream:
        """A `geneface.stream.FaceStream` of the avatar for live talk; it shares the loaded engine with every other."""
        record = await self.avatars.get(avatar)
        if not record.ready:
            raise UnknownAvatar(f"The avatar '{avatar}' is still being trained. Please try again later.")
        if record.engine == "geneface":
            raise EngineError("GeneFace++ avatars cannot talk live; choose a photo or lite avatar for live talk.")
        engine = await asyncio.to_thread(self._engine, record)
        from geneface.stream import FaceStream

        return await asyncio.to_thread(FaceStream, engine, size)

    def _engine(self, record: Avatar) -> PhotoAvatar | LiteAvatar:
        key = (record.name, record.artifact_path)
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            engine: PhotoAvatar | LiteAvatar
            if record.engine == "photo":
                from geneface.photo import PhotoAvatar

                engine = PhotoAvatar(record.artifact_path)
            elif record.engine == "lite":
                from geneface.lite.render import LiteAvatar

                engine = LiteAvatar(record.artifact_path, gpu=self.gpu)
            else:
                raise EngineError(f"Unknown avatar engine '{record.engine}'.")
            self._loaded[key] = engine
            while len(self._loaded) > self._keep:
                self._loaded.popitem(last=False)
            return engine
