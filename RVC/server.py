"""The voice worker as a process: the protocol (RVC/protocol.py) over a Unix socket or TCP.

    python -m RVC.server --socket var/voice.sock
    python -m RVC.server --host 0.0.0.0 --port 10300 --device cuda      # inside the container
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

import numpy as np

from core.errors import DoppelError
from RVC.protocol import CHUNK_SAMPLES, Message, ProtocolError, float_from_pcm, pcm_from_float, serve_connection, write_message
from RVC.service import ServiceConfig, VoiceService

log = logging.getLogger(__name__)


class VoiceServer:
    def __init__(self, service: VoiceService) -> None:
        self.service = service

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(reader, writer, self._answer)

    async def _answer(self, message: Message, writer: asyncio.StreamWriter) -> None:
        if message.type == "describe":
            await write_message(writer, Message("info", self.service.describe()))
        elif message.type == "health":
            await write_message(writer, Message("healthy", self.service.health()))
        elif message.type == "convert":
            await self._convert(message, writer)
        else:
            await write_message(writer, Message("error", {"code": "unknown_type", "message": f"unknown message '{message.type}'"}))

    async def _convert(self, message: Message, writer: asyncio.StreamWriter) -> None:
        data = message.data
        rid = data.get("id")
        try:
            samples = float_from_pcm(message.payload) if message.payload else None
            out, rate = await self.service.convert(str(data.get("engine", "lite")), dict(data.get("params") or {}), samples,
                                                   int(data.get("rate") or 16000), data.get("text"), str(data.get("language") or "en"))
        except DoppelError as exc:
            log.warning("convert %s failed: %s (%s)", rid, exc.message, exc.detail)
            await write_message(writer, Message("error", {"id": rid, "code": exc.code, "message": exc.message}))
            return
        except ProtocolError as exc:
            await write_message(writer, Message("error", {"id": rid, "code": "protocol", "message": str(exc)}))
            return
        await write_message(writer, Message("audio-start", {"id": rid, "rate": rate, "width": 2, "channels": 1}))
        for a in range(0, max(len(out), 1), CHUNK_SAMPLES):
            piece = np.asarray(out[a:a + CHUNK_SAMPLES])
            await write_message(writer, Message("audio-chunk", {"id": rid, "rate": rate}, pcm_from_float(piece)))
        await write_message(writer, Message("audio-stop", {"id": rid}))


async def serve(service: VoiceService, *, socket_path: str | None = None, host: str = "127.0.0.1", port: int = 0,
                ready: asyncio.Event | None = None) -> None:
    server = VoiceServer(service)
    if socket_path:
        Path(socket_path).parent.mkdir(parents=True, exist_ok=True)
        if os.path.exists(socket_path):
            os.unlink(socket_path)  # left by a worker that crashed
        srv = await asyncio.start_unix_server(server.handle, path=socket_path)
    else:
        srv = await asyncio.start_server(server.handle, host, port)
    log.info("voice worker listening on %s", socket_path or f"{host}:{port}")
    if ready is not None:
        ready.set()
    async with srv:
        await srv.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--socket")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=10300)
    ap.add_argument("--cache-dir", default="var/cache")
    ap.add_argument("--models-dir", default="RVC/models")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lite-runtime", default="auto", choices=("auto", "onnx", "torch"))
    ap.add_argument("--preload", default="", help="engines to load before listening, e.g. lite,rvc")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s voice-worker %(levelname)s %(message)s")
    service = VoiceService(ServiceConfig(Path(args.cache_dir), Path(args.models_dir), args.threads, args.device, args.lite_runtime))
    for name in filter(None, args.preload.split(",")):
        service.engine(name)
    asyncio.run(serve(service, socket_path=args.socket, host=args.host, port=args.port))


if __name__ == "__main__":
    main()
