"""Replies rendered by long-lived GeneFace++ containers, one per GPU, each keeping its avatars loaded.

Started through the docker SDK the first time a GeneFace++ avatar speaks (or found running, by name,
from an earlier start), each container runs geneface/render_server.py on 127.0.0.1:port+i. An avatar
always goes to the same GPU, so it is loaded once. When a container has died or stopped answering, it is
started again and the reply tried once more, as the voice worker's subprocess is (RVC/client.py).
"""
from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
from pathlib import Path

from core.errors import EngineError
from RVC.protocol import Message, pcm_from_float, read_message, write_message

log = logging.getLogger(__name__)
CONTAINER_PORT = 10400
RATE = 16000


class WorkerDown(ConnectionError):
    pass


def render_kwargs(engine, gpu: int, port: int) -> dict:
    """`containers.run` arguments for the render container of one GPU."""
    import docker.types

    from geneface.container import ROOT, asset_volumes, container_env, container_user

    data = engine.data_dir.resolve()
    return {
        "image": engine.image, "name": render_name(gpu), "detach": True, "working_dir": ROOT,
        "command": ["python", "-m", "geneface.render_server", "--host", "0.0.0.0", "--port", str(CONTAINER_PORT)],
        "user": container_user(),
        "environment": {**container_env(), "PYTHONPATH": f"/opt/doppel:{ROOT}"},
        # avatars are named by their host paths, so the data folder is mounted at the same path, read-only
        "volumes": {str(data): {"bind": str(data), "mode": "ro"}, **asset_volumes(engine.assets_dir)},
        "ports": {f"{CONTAINER_PORT}/tcp": ("127.0.0.1", port)},
        "shm_size": "8g",
        "device_requests": [docker.types.DeviceRequest(device_ids=[str(gpu)], capabilities=[["gpu"]])],
    }


def render_name(gpu: int) -> str:
    return f"doppel-geneface-render-gpu{gpu}"


class RenderWorker:
    """The render container of one GPU, and the connection to it."""

    def __init__(self, engine, gpu: int, port: int, *, start_timeout: float = 600.0, reply_timeout: float = 900.0) -> None:
        self.engine, self.gpu, self.port = engine, gpu, port
        self.start_timeout, self.reply_timeout = start_timeout, reply_timeout
        self.container = None
        self.starts = 0
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)

    def _start(self) -> None:
        """Blocking: find the container by name (a previous start left it) or run a new one."""
        import docker.errors

        client = self.engine.client()
        try:
            container = client.containers.get(render_name(self.gpu))
            if container.status != "running":
                container.start()
        except docker.errors.NotFound:
            container = client.containers.run(**render_kwargs(self.engine, self.gpu, self.port))
        self.container = container
        self.starts += 1

    def _restart(self) -> None:
        """Blocking: the container stopped answering; start it (again) from scratch if it is not running."""
        if self.container is not None:
            try:
                self.container.reload()
                if self.container.status == "running":
                    self.container.restart(timeout=10)
                    self.starts += 1
                    return
            except Exception:  # gone altogether: run a new one below
                self.container = None
        self._start()

    async def _ask(self, message: Message, timeout: float) -> Message:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20), 5)
        except (TimeoutError, OSError) as exc:
            raise WorkerDown(repr(exc)) from exc
        try:
            await write_message(writer, message)
            reply = await asyncio.wait_for(read_message(reader), timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            raise WorkerDown(repr(exc)) from exc
        finally:
            writer.close()
        if reply is None:
            raise WorkerDown("the render worker closed the connection")
        return reply

    async def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                await self._ask(Message("health"), 5)
                return
            except WorkerDown:
                if time.monotonic() > deadline:
                    raise EngineError("The GeneFace++ render worker did not start.", detail=f"GPU {self.gpu}") from None
                await asyncio.sleep(0.2)

    async def ensure(self, dead_start: int | None = None) -> None:
        """Start the container if this process has none yet; with `dead_start` (the start a reply failed on),
        restart it unless another reply already did."""
        async with self._lock:
            if self.container is None:
                await asyncio.to_thread(self._start)
            elif dead_start == self.starts:
                log.warning("GeneFace++ render worker on GPU %s stopped answering; restarting it", self.gpu)
                await asyncio.to_thread(self._restart)
            else:
                return
            await self._wait_healthy()

    async def render(self, avatar_dir: Path, vid: str, samples) -> bytes:
        message = Message("render", {"id": next(self._ids), "avatar_dir": str(Path(avatar_dir).resolve()),
                                     "video_id": vid, "rate": RATE}, pcm_from_float(samples))
        await self.ensure()
        start = self.starts
        try:
            reply = await self._ask(message, self.reply_timeout)
        except WorkerDown as first:
            # the reply in flight is tried once more on a fresh container
            await self.ensure(dead_start=start)
            try:
                reply = await self._ask(message, self.reply_timeout)
            except WorkerDown as exc:
                raise EngineError("The GeneFace++ render worker keeps failing.", detail=f"{first!r}; {exc!r}") from exc
        if reply.type == "error":
            raise EngineError(f"GeneFace++ could not render this reply: {reply.data.get('message', '')}"[:300],
                              detail=str(reply.data))
        if reply.type != "video" or not reply.payload:
            raise EngineError("The GeneFace++ render worker answered with no video.", detail=reply.type)
        return reply.payload


class RenderPool:
    """One RenderWorker per configured GPU; an avatar sticks to one of them."""

    def __init__(self, workers: list[RenderWorker]) -> None:
        self.workers = workers

    @classmethod
    def for_engine(cls, engine) -> "RenderPool":
        return cls([RenderWorker(engine, gpu, engine.render_port + i) for i, gpu in enumerate(engine.gpus)])

    def pick(self, avatar: str) -> RenderWorker:
        index = int(hashlib.sha1(avatar.encode()).hexdigest(), 16) % len(self.workers)
        return self.workers[index]

    async def render(self, record, audio) -> bytes:
        from adapters.media import resample
        from geneface.container import video_id

        samples = resample(audio, RATE).samples if audio.sample_rate != RATE else audio.samples
        return await self.pick(record.name).render(Path(record.artifact_path), record.params.get("video_id") or video_id(record.name), samples)

    async def close(self) -> None:
        # the containers stay up: loading avatars is what they exist to save; `docker stop` frees the GPUs
        pass
