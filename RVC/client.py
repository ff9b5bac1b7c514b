"""Clients of the voice worker, and the converter the pipeline sees (core.ports.VoiceConverter).

Three ways to reach the same service: in this process, a child process over a Unix socket (restarted
when it dies, the sentence retried once), or a container over TCP (RVC/docker_run.py starts it).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Protocol, Sequence

import numpy as np

from core import audio as audio_ops
from core.errors import BadInput, DoppelError, EngineError, ProviderError
from core.types import Audio, FallbackAudio, Voice
from RVC.protocol import Message, float_from_pcm, pcm_from_float, read_message, write_message

if TYPE_CHECKING:
    from RVC.service import VoiceService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    engine: str
    params: dict[str, Any]
    audio: Audio | None = None
    text: str | None = None
    language: str = "en"


class WorkerDown(ConnectionError):
    """The worker process or container is gone or stopped answering."""


class VoiceWorker(Protocol):
    async def describe(self) -> dict[str, Any]: ...

    async def health(self) -> dict[str, Any]: ...

    def stream(self, requests: Sequence[Request]) -> AsyncIterator[Audio]:
        """Results in request order, each as soon as it is made."""
        ...

    async def close(self) -> None: ...


_ERRORS = {cls.code: cls for cls in (BadInput, EngineError)}


def _error(data: dict[str, Any]) -> DoppelError:
    cls = _ERRORS.get(data.get("code", ""), EngineError)
    return cls(data.get("message") or None)


class InProcessWorker:
    def __init__(self, service: VoiceService) -> None:
        self.service = service

    async def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = self.service.describe()
        return described

    async def health(self) -> dict[str, Any]:
        health: dict[str, Any] = self.service.health()
        return health

    async def stream(self, requests: Sequence[Request]) -> AsyncIterator[Audio]:
        for r in requests:
            samples, rate = (r.audio.samples, r.audio.sample_rate) if r.audio is not None else (None, 16000)
            out, out_rate = await self.service.convert(r.engine, r.params, samples, rate, r.text, r.language)
            yield Audio(out, out_rate)

    async def close(self) -> None:
        pass


class SocketWorker:
    """Speaks the protocol over a Unix socket path or host:port; one connection per stream of requests."""

    def __init__(self, path: str | None = None, host: str = "127.0.0.1", port: int = 0, timeout: float = 120.0) -> None:
        self.path, self.host, self.port, self.timeout = path, host, port, timeout
        self._ids = itertools.count(1)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            if self.path:
                return await asyncio.wait_for(asyncio.open_unix_connection(self.path, limit=1 << 20), 5)
            return await asyncio.wait_for(asyncio.open_connection(self.host, self.port, limit=1 << 20), 5)
        except (TimeoutError, OSError) as exc:
            raise WorkerDown(f"voice worker unreachable: {exc!r}") from exc

    async def _ask(self, message: Message, answer: str) -> dict[str, Any]:
        reader, writer = await self._connect()
        try:
            await write_message(writer, message)
            reply = await asyncio.wait_for(read_message(reader), self.timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            raise WorkerDown(repr(exc)) from exc
        finally:
            writer.close()
        if reply is None or reply.type != answer:
            raise WorkerDown(f"unexpected reply {reply!r}")
        return reply.data

    async def describe(self) -> dict[str, Any]:
        return await self._ask(Message("describe"), "info")

    async def health(self) -> dict[str, Any]:
        return await self._ask(Message("health"), "healthy")

    async def stream(self, requests: Sequence[Request]) -> AsyncIterator[Audio]:
        reader, writer = await self._connect()
        try:
            ids = []
            for r in requests:  # all sent at once: the worker starts on the next while we read the first
                rid = next(self._ids)
                ids.append(rid)
                data = {"id": rid, "engine": r.engine, "params": r.params, "language": r.language}
                payload = b""
                if r.audio is not None:
                    data["rate"] = r.audio.sample_rate
                    payload = pcm_from_float(r.audio.samples)
                else:
                    data["text"] = r.text
                await write_message(writer, Message("convert", data, payload))
            for rid in ids:
                yield await self._receive(reader, rid)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            raise WorkerDown(repr(exc)) from exc
        finally:
            writer.close()

    async def _receive(self, reader: asyncio.StreamReader, rid: int) -> Audio:
        pieces: list[np.ndarray] = []
        rate = 16000
        while True:
            msg = await asyncio.wait_for(read_message(reader), self.timeout)
            if msg is None:
                raise WorkerDown("the worker closed the connection mid-answer")
            if msg.type == "error":
                raise _error(msg.data)
            if msg.data.get("id") != rid:
                raise WorkerDown(f"answer for {msg.data.get('id')} while waiting for {rid}")
            if msg.type == "audio-start":
                rate = int(msg.data["rate"])
            elif msg.type == "audio-chunk":
                pieces.append(float_from_pcm(msg.payload))
            elif msg.type == "audio-stop":
                return Audio(np.concatenate(pieces) if pieces else np.zeros(0, np.float32), rate)

    async def close(self) -> None:
        pass


class SubprocessWorker(SocketWorker):
    """A child `python -m RVC.server` on a Unix socket; restarted when it has died, each sentence retried once."""

    def __init__(self, socket_path: Path, *, cache_dir: Path, models_dir: Path, threads: int = 2,
                 python: str = sys.executable, start_timeout: float = 60.0, preload: str = "") -> None:
        super().__init__(path=str(socket_path))
        self.cmd = [python, "-m", "RVC.server", "--socket", str(socket_path), "--cache-dir", str(cache_dir),
                    "--models-dir", str(models_dir), "--threads", str(threads), "--preload", preload]
        self.start_timeout = start_timeout
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._start_lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._start_lock:
            if self.process is not None and self.process.returncode is None:
                return
            if self.process is not None:
                self.restarts += 1
                log.warning("voice worker exited (%s); restarting", self.process.returncode)
            root = Path(__file__).resolve().parent.parent
            env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
            self.process = await asyncio.create_subprocess_exec(*self.cmd, cwd=str(root), env=env, stdin=asyncio.subprocess.DEVNULL)
            deadline = time.monotonic() + self.start_timeout
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise EngineError("The voice worker could not start.", detail=f"exit {self.process.returncode}")
                try:
                    await SocketWorker.health(self)
                    return
                except WorkerDown:
                    await asyncio.sleep(0.1)
            raise EngineError("The voice worker did not start in time.")

    async def describe(self) -> dict[str, Any]:
        await self.start()
        return await super().describe()

    async def health(self) -> dict[str, Any]:
        await self.start()
        return await super().health()

    async def stream(self, requests: Sequence[Request]) -> AsyncIterator[Audio]:
        done = 0
        retried = False
        while done < len(requests):
            await self.start()
            try:
                async for audio in SocketWorker.stream(self, requests[done:]):
                    done += 1
                    retried = False
                    yield audio
            except WorkerDown as exc:
                if retried:
                    raise ProviderError("The voice worker keeps failing on this sentence.", detail=repr(exc)) from exc
                retried = True  # the sentence in flight is tried once more on a fresh worker
                await self._reap()

    async def _reap(self) -> None:
        if self.process is not None and self.process.returncode is None:
            try:
                await asyncio.wait_for(self.process.wait(), 2)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def request_for(audio: Audio, voice: Voice) -> Request:
    params = dict(voice.params)
    return Request(voice.engine.value, params, audio=audio, language=voice.language)


async def speech_or_base(converted: Audio, base: Audio, voice: Voice) -> Audio:
    """No noise leaves: converted audio that is not speech is replaced by the base voice's, with a note saying so."""
    from RVC.speech_check import check_speech

    verdict = await asyncio.to_thread(check_speech, converted.samples, converted.sample_rate)
    if verdict.is_speech:
        return converted
    log.warning("voice %s: converted sentence is not speech (%s); sending the base voice instead", voice.name, verdict.problem)
    from RVC.features import to_rate

    samples = to_rate(base.samples, base.sample_rate, converted.sample_rate)  # one rate for every chunk of an answer
    return FallbackAudio(samples, converted.sample_rate,
                         note=f"The voice '{voice.name}' did not produce clear speech, so part of this answer is in the "
                              "plain voice. An admin may need to train it again.")


class WorkerConverter:
    """core.ports.VoiceConverter over any worker; every sentence passes the speech check before it is returned."""

    def __init__(self, worker: VoiceWorker) -> None:
        self.worker = worker

    async def convert(self, audio: Audio, voice: Voice) -> Audio:
        async for out in self.worker.stream([request_for(audio, voice)]):
            return await speech_or_base(out, audio, voice)
        raise EngineError("The voice worker returned nothing.")

    async def convert_all(self, parts: Sequence[Audio], voice: Voice) -> AsyncIterator[Audio]:
        """Every sentence sent at once; each comes back checked, loudness-matched, in order, as soon as it is made."""
        index = 0
        async for out in self.worker.stream([request_for(a, voice) for a in parts]):
            checked = await speech_or_base(out, parts[index], voice)
            index += 1
            matched = audio_ops.match_loudness(checked)
            yield FallbackAudio(matched.samples, matched.sample_rate, note=checked.note) if isinstance(checked, FallbackAudio) else matched

    async def preview(self, voice: Voice, text: str) -> Audio:
        """The worker says `text` in its base voice and converts it with `voice`'s files; no speech check and no
        fallback, since a new model is judged by exactly what it makes."""
        request = Request(voice.engine.value, dict(voice.params), text=text, language=voice.language)
        async for out in self.worker.stream([request]):
            return out
        raise EngineError("The voice worker returned nothing.")

    async def close(self) -> None:
        await self.worker.close()

    async def convert_joined(self, parts: Sequence[Audio], voice: Voice) -> Audio:
        return audio_ops.join([a async for a in self.convert_all(parts, voice)])
