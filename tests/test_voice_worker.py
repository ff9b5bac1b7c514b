"""The voice worker: protocol handshake, ordered streaming, a killed worker restarted, Docker run config, seamless joins."""
from __future__ import annotations

import asyncio
import os
import signal

import numpy as np
import pytest

from core.errors import EngineError
from core.types import Audio, Voice, VoiceEngine
from RVC.client import InProcessWorker, Request, SocketWorker, SubprocessWorker, WorkerConverter
from RVC.docker_run import DockerOptions, DockerWorker, run_config
from RVC.server import serve
from RVC.service import ServiceConfig, VoiceService
from tests.fake_docker import FakeDocker
from tests.voice_fixtures import write_tiny_hubert, write_tiny_rvc


def _tone(seconds: float, f0: float, rate: int = 22050, level: float = 0.3) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    return Audio((level * np.sin(2 * np.pi * f0 * t)).astype(np.float32), rate)


@pytest.fixture
def models(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    write_tiny_rvc(folder / "tiny.pth")
    write_tiny_hubert(folder / "hubert_base.pt")
    (folder / "broken.pth").write_bytes(b"\x00corrupt")
    return folder


def _voice(model: str = "tiny.pth") -> Voice:
    return Voice("tiny", VoiceEngine.RVC, params={"model": model})


@pytest.mark.slow  # starts voice worker processes
async def test_subprocess_worker_streams_in_order_and_survives_a_kill(models, tmp_path):
    worker = SubprocessWorker(tmp_path / "voice.sock", cache_dir=tmp_path / "cache", models_dir=models)
    try:
        info = await worker.describe()
        assert info["name"] == "doppel-voice" and {"lite", "rvc"} <= set(info["engines"])
        first_pid = worker.process.pid
        lengths = [0.6, 1.0, 1.4]
        requests = [Request("rvc", {"model": "tiny.pth"}, audio=_tone(s, 150)) for s in lengths]
        got = []
        async for audio in worker.stream(requests):
            got.append(audio)
            if len(got) == 1:  # the worker dies while the next sentences are in flight
                os.kill(worker.process.pid, signal.SIGKILL)
        assert [a.sample_rate for a in got] == [40000] * 3
        assert [round(a.seconds, 1) for a in got] == lengths  # in order, none lost
        assert worker.restarts == 1 and worker.process.pid != first_pid
        assert (await worker.health())["served"] >= 2
    finally:
        await worker.close()
    assert worker.process.returncode is not None


@pytest.mark.slow  # starts a voice worker process
async def test_a_corrupt_model_is_refused_and_the_worker_stays_up(models, tmp_path):
    worker = SubprocessWorker(tmp_path / "voice.sock", cache_dir=tmp_path / "cache", models_dir=models)
    converter = WorkerConverter(worker)
    try:
        with pytest.raises(EngineError, match=r"broken\.pth"):
            await converter.convert(_tone(0.5, 150), _voice("broken.pth"))
        pid = worker.process.pid
        out = await converter.convert(_tone(0.5, 150), _voice())
        assert out.seconds == pytest.approx(0.5, abs=0.03) and worker.process.pid == pid and worker.restarts == 0
    finally:
        await worker.close()


async def test_bad_protocol_input_gets_an_error_not_a_crash(models, tmp_path):
    service = VoiceService(ServiceConfig(tmp_path / "cache", models))
    ready = asyncio.Event()
    path = str(tmp_path / "v.sock")
    task = asyncio.create_task(serve(service, socket_path=path, ready=ready))
    try:
        await ready.wait()
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"not json\n")
        await writer.drain()
        line = await reader.readline()
        assert b'"error"' in line and b"protocol" in line
        writer.close()
        assert (await SocketWorker(path).health())["served"] == 0
    finally:
        task.cancel()


async def test_joined_chunks_are_loudness_matched_without_clicks(models, tmp_path):
    converter = WorkerConverter(InProcessWorker(VoiceService(ServiceConfig(tmp_path / "cache", models))))
    parts = [_tone(0.8, 150, level=0.05), _tone(0.8, 150, level=0.6), _tone(0.8, 150, level=0.2)]
    pieces = [a async for a in converter.convert_all(parts, _voice())]
    levels = [20 * np.log10(np.sqrt(np.mean(p.samples ** 2))) for p in pieces]
    assert max(levels) - min(levels) < 1.5  # 21 dB apart going in
    joined = await converter.convert_joined(parts, _voice())
    x = joined.samples
    assert joined.seconds == pytest.approx(sum(p.seconds for p in pieces) + 2 * 0.12, abs=0.01)
    # no jump at the seams bigger than the signal's own largest step
    seam_idx = np.cumsum([len(p.samples) + int(0.12 * joined.sample_rate) for p in pieces[:-1]])
    steps = np.abs(np.diff(x))
    inside = np.percentile(steps, 99.9)
    for s in seam_idx:
        assert steps[max(0, s - 50): s + 50].max() <= inside + 1e-3


async def test_docker_worker_runs_the_image_with_gpus_and_talks_tcp(models, tmp_path, caplog):
    opts = DockerOptions(image="doppel-voice:test", host_port=0, models_dir=models, data_dir=tmp_path / "var", gpus="all")
    config = run_config(opts)
    assert config["device_requests"][0]["Capabilities"] == [["gpu"]] and config["device_requests"][0]["Count"] == -1
    assert config["ports"] == {"10300/tcp": ("127.0.0.1", 0)} and "--device" in config["command"]
    assert config["command"][config["command"].index("--device") + 1] == "cuda"
    assert run_config(DockerOptions(gpus=""))["device_requests"] == []
    assert run_config(DockerOptions(gpus="1,2"))["device_requests"][0]["DeviceIDs"] == ["1", "2"]

    # the container's side: a real worker on a TCP port, asked for the GPU as the image's command asks (this machine
    # has none, like a container started without its GPUs); the Docker Engine API: a fake one on 127.0.0.1
    service = VoiceService(ServiceConfig(tmp_path / "cache", models, device="cuda"))
    assert service.health()["device"] == "cpu" and "running on the CPU" in service.health()["device_warning"]
    server = await asyncio.start_server(__import__("RVC.server", fromlist=["VoiceServer"]).VoiceServer(service).handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with FakeDocker(lambda body: []) as fake:
        worker = DockerWorker(DockerOptions(image="doppel-voice:test", host_port=port, models_dir=models,
                                            data_dir=tmp_path / "var", docker_url=fake.url))
        out = await WorkerConverter(worker).convert(_tone(0.5, 150), _voice())
        assert out.sample_rate == 40000 and out.seconds == pytest.approx(0.5, abs=0.03)
        (created,) = fake.created
        assert created["Image"] == "doppel-voice:test" and created["_name"] == "doppel-voice"
        assert created["HostConfig"]["DeviceRequests"][0]["Capabilities"] == [["gpu"]]
        assert created["HostConfig"]["PortBindings"]["10300/tcp"][0]["HostIp"] == "127.0.0.1"
        assert any(b.endswith(":/app/RVC/models:ro") for b in created["HostConfig"]["Binds"])
    server.close()
    # said loudly on both sides: in the worker's log and in the bot's
    loud = [r for r in caplog.records if r.levelname == "ERROR"]
    assert any("VOICE WORKER ON THE WRONG DEVICE" in r.getMessage() for r in loud)
    assert any("given GPUs (all)" in r.getMessage() for r in loud)


async def test_text_requests_are_spoken_by_the_base_tts_then_converted(models, tmp_path):
    worker = InProcessWorker(VoiceService(ServiceConfig(tmp_path / "cache", models)))
    short, long = [a async for a in worker.stream([Request("rvc", {"model": "tiny.pth"}, text="Hi."),
                                                   Request("rvc", {"model": "tiny.pth"}, text="This sentence is a good deal longer.")])]
    assert short.sample_rate == long.sample_rate == 40000
    assert 0.2 < short.seconds < long.seconds
    with pytest.raises(Exception, match="Nothing to convert"):
        [a async for a in worker.stream([Request("rvc", {"model": "tiny.pth"})])]


async def test_closing_the_services_stops_the_voice_worker_they_started(tmp_path):
    from adapters.settings import Settings
    from bot.wiring import build_services
    from core.types import VoiceEngine

    services = await build_services(Settings(_env_file=None, data_dir=tmp_path / "var", voice_worker="subprocess"))
    worker = services.converters[VoiceEngine.LITE].worker
    try:
        assert (await worker.health())["served"] == 0
        process = worker.process
        assert process.returncode is None
    finally:
        await services.close()
    assert process.returncode is not None  # no voice worker outlives the bot that started it
