"""The persistent GeneFace++ render worker: one container per GPU, avatars kept loaded, restarted when it dies.

The container's program (geneface/render_server.py) runs for real on 127.0.0.1, started by the fake Docker
engine when the container starts; only GeneFace++'s own model is replaced, by a loader that counts loads
and writes the audio it was given as its "video".
"""
from __future__ import annotations

import asyncio
import os
import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from core.errors import EngineError
from core.types import Audio
from geneface.container import video_id
from geneface.docker_engine import GeneFaceDocker
from geneface.render_server import RenderError, RenderService, serve
from geneface.render_worker import RenderPool
from core.types import Avatar
from tests.fake_docker import FakeDocker
from tests.test_geneface_docker import make_assets


class CountingLoader:
    def __init__(self) -> None:
        self.loads: list[str] = []

    def __call__(self, avatar_dir: Path, vid: str):
        self.loads.append(vid)

        def render(wav: Path, mp4: Path) -> None:
            with wave.open(str(wav)) as w:
                frames = w.getnframes()
            mp4.write_bytes(f"video of {vid}: {frames} samples".encode())

        return render


def trained(root: Path, name: str) -> Avatar:
    vid = video_id(name)
    avatar_dir = root / "avatars" / name / "geneface"
    (avatar_dir / "nerf" / f"{vid}_torso").mkdir(parents=True)
    return Avatar(name=name, engine="geneface", ready=True, source_path="", artifact_path=str(avatar_dir), params={})


def test_the_service_keeps_avatars_loaded_and_evicts_the_least_recent(tmp_path):
    loader = CountingLoader()
    service = RenderService(loader, keep=1, work_dir=tmp_path / "work")
    anna, bob = trained(tmp_path, "anna"), trained(tmp_path, "bob")
    pcm = np.zeros(1600, "<i2").tobytes()
    for avatar in (anna, anna, bob, anna):
        out = service.render(Path(avatar.artifact_path), video_id(avatar.name), pcm, 16000)
        assert out == f"video of {video_id(avatar.name)}: 1600 samples".encode()
    assert loader.loads == ["doppel_anna", "doppel_bob", "doppel_anna"]
    assert list((tmp_path / "work").iterdir()) == []  # no reply's files left behind
    with pytest.raises(RenderError, match="no trained GeneFace"):
        service.render(tmp_path / "nowhere", "doppel_x", pcm, 16000)


class Containers:
    """Runs the render server of each started container on the host port it publishes."""

    def __init__(self) -> None:
        self.loader = CountingLoader()
        self.servers: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Task, threading.Thread]] = {}

    @staticmethod
    def _port(body: dict) -> int:
        return int(body["HostConfig"]["PortBindings"]["10400/tcp"][0]["HostPort"])

    def start(self, body: dict) -> None:
        port, ready, loop = self._port(body), threading.Event(), asyncio.new_event_loop()
        started = asyncio.Event()
        task = loop.create_task(serve(RenderService(self.loader, keep=2), "127.0.0.1", port, started))

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(started.wait())
            ready.set()
            try:
                loop.run_until_complete(task)
            except asyncio.CancelledError:
                pass
            finally:  # the connections still open go with the "container"
                pending = asyncio.all_tasks(loop)
                for other in pending:
                    other.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert ready.wait(5)
        self.servers[port] = (loop, task, thread)

    def stop(self, body: dict) -> None:
        self._stop(self._port(body))

    def _stop(self, port: int) -> None:
        loop, task, thread = self.servers.pop(port)
        loop.call_soon_threadsafe(task.cancel)
        thread.join(5)

    def stop_all(self) -> None:
        for port in list(self.servers):
            self._stop(port)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_replies_go_to_one_long_lived_container_per_gpu_which_is_restarted_when_it_dies(tmp_path):
    make_assets(tmp_path / "assets")
    containers = Containers()
    port = free_port()
    anna = trained(tmp_path, "anna")
    speech = Audio(np.zeros(24000, np.float32), 24000)  # resampled to 16 kHz on the way
    with FakeDocker(lambda body: [], on_start=containers.start, on_stop=containers.stop) as fake:
        try:
            engine = GeneFaceDocker("doppel/geneface:test", tmp_path, docker_url=fake.url, assets_dir=tmp_path / "assets",
                                    gpus=[2, 5], render_port=port)
            pool = RenderPool.for_engine(engine)
            worker = pool.pick("anna")
            assert worker is pool.pick("anna")  # an avatar sticks to one GPU
            for _ in range(2):
                assert await pool.render(anna, speech) == b"video of doppel_anna: 16000 samples"
            assert len(fake.created) == 1 and containers.loader.loads == ["doppel_anna"]  # loaded once, reused
            body = fake.created[0]
            gpu = worker.gpu
            assert body["_name"] == f"doppel-geneface-render-gpu{gpu}"
            assert body["HostConfig"]["DeviceRequests"][0]["DeviceIDs"] == [str(gpu)]
            assert body["HostConfig"]["PortBindings"]["10400/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(worker.port)}]
            assert body["User"] == f"{os.getuid()}:{os.getgid()}"
            data = str(tmp_path.resolve())
            assert f"{data}:{data}:ro" in body["HostConfig"]["Binds"]
            assert "HF_HUB_OFFLINE=1" in body["Env"] and body["Cmd"][:3] == ["python", "-m", "geneface.render_server"]

            # the container dies: the next reply starts it again and comes back all the same
            fake.kill("c0001")
            assert await pool.render(anna, speech) == b"video of doppel_anna: 16000 samples"
            assert worker.starts == 2 and len(fake.created) == 1

            # another process (a restarted bot) finds the running container by its name instead of making one
            again = RenderPool.for_engine(GeneFaceDocker("doppel/geneface:test", tmp_path, docker_url=fake.url,
                                                         assets_dir=tmp_path / "assets", gpus=[2, 5], render_port=port))
            assert await again.render(anna, speech) == b"video of doppel_anna: 16000 samples"
            assert len(fake.created) == 1

            # an avatar the worker cannot load: a clear error, and the worker stays up
            with pytest.raises(EngineError, match="could not render"):
                await pool.render(Avatar("ghost", "geneface", True, "", str(tmp_path / "ghost"), {}), speech)
        finally:
            containers.stop_all()
