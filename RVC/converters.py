"""The voice converters the pipeline gets, one worker behind all engines (called from bot/wiring.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from core.ports import VoiceConverter
from core.types import VoiceEngine
from RVC.client import InProcessWorker, SubprocessWorker, VoiceWorker, WorkerConverter


class WorkerSettings(Protocol):
    """What choosing and starting the voice worker reads of the settings (bot/settings.py has them all)."""

    voice_worker: str
    rvc_models_dir: Path
    threads: int
    data_dir: Path
    voice_socket: Path | None
    voice_docker_image: str
    voice_docker_port: int
    voice_gpus: str
    docker_url: str

    @property
    def cache_dir(self) -> Path: ...


def build_worker(settings: WorkerSettings) -> VoiceWorker:
    mode = settings.voice_worker
    cache = settings.cache_dir
    if mode == "inprocess":
        from RVC.service import ServiceConfig, VoiceService

        return InProcessWorker(VoiceService(ServiceConfig(cache, Path(settings.rvc_models_dir), settings.threads)))
    if mode == "subprocess":
        socket = settings.voice_socket or settings.data_dir / "voice.sock"
        return SubprocessWorker(Path(socket), cache_dir=cache, models_dir=Path(settings.rvc_models_dir), threads=settings.threads)
    if mode == "docker":
        from RVC.docker_run import DockerOptions, DockerWorker

        return DockerWorker(DockerOptions(image=settings.voice_docker_image, host_port=settings.voice_docker_port,
                                          models_dir=Path(settings.rvc_models_dir), data_dir=settings.data_dir,
                                          gpus=settings.voice_gpus, docker_url=settings.docker_url))
    raise ValueError(f"DOPPEL_VOICE_WORKER must be inprocess, subprocess or docker, not '{mode}'")


def build_converters(settings: WorkerSettings) -> dict[VoiceEngine, VoiceConverter]:
    from RVC.engines.cosyvoice import available

    converter = WorkerConverter(build_worker(settings))
    engines = [VoiceEngine.LITE, VoiceEngine.RVC] + ([VoiceEngine.COSYVOICE] if available() else [])
    return {engine: converter for engine in engines}
