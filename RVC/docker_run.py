"""Starting the voice worker in its container (the image RVC/Dockerfile builds) through the docker SDK."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from RVC.client import SocketWorker, WorkerDown

log = logging.getLogger(__name__)

CONTAINER_PORT = 10300


@dataclass(frozen=True)
class DockerOptions:
    image: str = "doppel-voice:latest"
    name: str = "doppel-voice"
    host_port: int = 10300
    models_dir: Path = Path("RVC/models")
    data_dir: Path = Path("var")
    gpus: str = "all"  # "all", "" for none, or device ids "0,1"
    threads: int = 4
    docker_url: str = ""  # empty: the local engine (DOCKER_HOST or its socket)


def run_config(opts: DockerOptions) -> dict:
    """Keyword arguments for docker's `containers.run`: GPU request, models and voices mounted, port on loopback only."""
    from docker.types import DeviceRequest

    device_requests = []
    if opts.gpus == "all":
        device_requests = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    elif opts.gpus:
        device_requests = [DeviceRequest(device_ids=[g.strip() for g in opts.gpus.split(",")], capabilities=[["gpu"]])]
    command = ["python", "-m", "RVC.server", "--host", "0.0.0.0", "--port", str(CONTAINER_PORT),
               "--device", "cuda" if device_requests else "cpu", "--threads", str(opts.threads),
               "--models-dir", "/app/RVC/models", "--cache-dir", "/data/cache", "--preload", "rvc"]
    return {
        "image": opts.image,
        "command": command,
        "name": opts.name,
        "detach": True,
        "remove": True,
        "device_requests": device_requests,
        # voices' artifacts are referenced by their host paths, so the data folder is mounted at the same path
        "volumes": {
            str(Path(opts.models_dir).resolve()): {"bind": "/app/RVC/models", "mode": "ro"},
            str(Path(opts.data_dir).resolve()): {"bind": str(Path(opts.data_dir).resolve()), "mode": "rw"},
        },
        "ports": {f"{CONTAINER_PORT}/tcp": ("127.0.0.1", opts.host_port)},
        "shm_size": "2g",
        "healthcheck": {
            "test": ["CMD", "python", "-m", "RVC.healthcheck", "--port", str(CONTAINER_PORT)],
            "interval": 10_000_000_000, "timeout": 5_000_000_000, "retries": 3,
        },
        "restart_policy": None,
    }


class DockerWorker(SocketWorker):
    """The seed's `rvc-app` role: one long-lived container instead of one `docker run --rm` per sentence."""

    def __init__(self, opts: DockerOptions) -> None:
        super().__init__(host="127.0.0.1", port=opts.host_port)
        self.opts = opts
        self.container: Any = None  # a docker Container, once started or found
        self.device_checked = False

    def start(self) -> None:
        import docker

        client = docker.DockerClient(base_url=self.opts.docker_url) if self.opts.docker_url else docker.from_env()
        try:
            self.container = client.containers.get(self.opts.name)
            if self.container.status != "running":
                self.container.start()
        except docker.errors.NotFound:
            self.container = client.containers.run(**run_config(self.opts))

    async def stream(self, requests):
        if self.container is None:
            await asyncio.to_thread(self.start)
        if not self.device_checked:
            await self._check_device()
        async for audio in super().stream(requests):
            yield audio

    async def _check_device(self) -> None:
        """A container given GPUs that still runs on the CPU is said so here as well as in its own log."""
        try:
            health = await self.health()
        except WorkerDown:
            return  # still starting: asked again before the next request
        self.device_checked = True
        warn_if_degraded(health, self.opts.gpus)

    async def close(self) -> None:
        if self.container is not None:
            # docker waits up to 10 s for the worker to exit: the bot's loop goes on answering meanwhile
            await asyncio.to_thread(self.container.stop, timeout=10)


def warn_if_degraded(health: dict, gpus: str) -> bool:
    if gpus and health.get("device_warning"):
        log.error("The voice container was given GPUs (%s) but %s", gpus, health["device_warning"])
        return True
    return False
