"""The GeneFace++ render worker: a long-lived process on one GPU that keeps avatars loaded between replies.

It runs inside the image geneface/Dockerfile builds (Python 3.9, GeneFace++ at /opt/GeneFacePlusPlus) and
speaks the voice worker's protocol (RVC/protocol.py):

    {"type": "describe"} → {"type": "info", ...}       {"type": "health"} → {"type": "healthy", ...}
    {"type": "render", "data": {"id", "avatar_dir", "video_id", "rate"}} + PCM s16le mono
        → {"type": "video", "data": {"id", "seconds"}} + the MP4 (H.264 + AAC), or {"type": "error", ...}

Loading an avatar (the audio-to-motion model, its NeRF, the dataset's poses and background) takes most
of a fresh container's time per reply; here the last `keep` avatars stay loaded, and replies are made one
at a time on the GPU while connections wait their turn.

    python -m geneface.render_server --port 10400 --keep 3
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import tempfile
import time
import wave
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from RVC.protocol import Message, serve_connection, write_message

log = logging.getLogger("geneface.render")
GENEFACE_ROOT = Path(os.environ.get("GENEFACE_ROOT", "/opt/GeneFacePlusPlus"))

# loads one avatar: (its folder, its video id) → a function rendering (wav path, mp4 path)
Loader = Callable[[Path, str], Callable[[Path, Path], None]]


class RenderError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class RenderService:
    """The loaded avatars, least recently used first out, and the one-at-a-time rendering."""

    def __init__(self, loader: Loader, keep: int = 3, work_dir: Path | None = None) -> None:
        self.loader, self.keep = loader, keep
        self.loaded: "OrderedDict[str, Callable[[Path, Path], None]]" = OrderedDict()
        self.loads = 0
        self.rendered = 0
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="doppel-render-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._ids = itertools.count(1)

    def avatar(self, avatar_dir: Path, vid: str) -> Callable[[Path, Path], None]:
        key = f"{avatar_dir}:{vid}"
        if key in self.loaded:
            self.loaded.move_to_end(key)
            return self.loaded[key]
        if not (avatar_dir / "nerf" / f"{vid}_torso").is_dir():
            raise RenderError("bad_input", f"no trained GeneFace++ avatar in {avatar_dir}")
        started = time.monotonic()
        render = self.loader(avatar_dir, vid)
        self.loads += 1
        log.info("loaded %s in %.1f s", key, time.monotonic() - started)
        self.loaded[key] = render
        while len(self.loaded) > self.keep:
            self.loaded.popitem(last=False)
        return render

    def render(self, avatar_dir: Path, vid: str, pcm: bytes, rate: int) -> bytes:
        render = self.avatar(avatar_dir, vid)
        n = next(self._ids)
        wav, mp4 = self.work_dir / f"reply{n}.wav", self.work_dir / f"reply{n}.mp4"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm)
        try:
            render(wav, mp4)
            if not mp4.exists() or mp4.stat().st_size == 0:
                raise RenderError("engine", "GeneFace++ made no video")
            self.rendered += 1
            return mp4.read_bytes()
        finally:
            for leftover in self.work_dir.glob(f"reply{n}*"):
                leftover.unlink()

    def info(self) -> dict:
        return {"engine": "geneface", "loaded": list(self.loaded), "loads": self.loads, "rendered": self.rendered,
                "keep": self.keep}


class RenderServer:
    def __init__(self, service: RenderService) -> None:
        self.service = service
        self.gpu = asyncio.Lock()  # one reply at a time on the GPU; others wait on their connections

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(reader, writer, self._answer)

    async def _answer(self, message: Message, writer: asyncio.StreamWriter) -> None:
        if message.type == "describe":
            await write_message(writer, Message("info", self.service.info()))
        elif message.type == "health":
            await write_message(writer, Message("healthy", {"busy": self.gpu.locked(), **self.service.info()}))
        elif message.type == "render":
            await self._render(message, writer)
        else:
            await write_message(writer, Message("error", {"code": "unknown_type", "message": f"unknown message '{message.type}'"}))

    async def _render(self, message: Message, writer: asyncio.StreamWriter) -> None:
        data = message.data
        rid = data.get("id")
        try:
            avatar_dir, vid = Path(str(data["avatar_dir"])), str(data["video_id"])
            rate = int(data.get("rate") or 16000)
            if not message.payload or len(message.payload) % 2:
                raise RenderError("bad_input", "the audio must be 16-bit mono PCM")
            started = time.monotonic()
            async with self.gpu:
                video = await asyncio.to_thread(self.service.render, avatar_dir, vid, message.payload, rate)
        except RenderError as exc:
            await write_message(writer, Message("error", {"id": rid, "code": exc.code, "message": exc.message}))
            return
        except KeyError as exc:
            await write_message(writer, Message("error", {"id": rid, "code": "protocol", "message": f"missing {exc}"}))
            return
        except Exception as exc:  # GeneFace++ raises anything; the worker must stay up
            log.exception("render %s failed", rid)
            await write_message(writer, Message("error", {"id": rid, "code": "engine", "message": f"{type(exc).__name__}: {exc}"}))
            return
        seconds = len(message.payload) / 2 / rate
        log.info("rendered %.1f s of speech in %.1f s", seconds, time.monotonic() - started)
        await write_message(writer, Message("video", {"id": rid, "seconds": seconds}, video))


def geneface_loader(root: Path = GENEFACE_ROOT) -> Loader:
    """Avatars as GeneFace++'s own inference (inference/genefacepp_infer.py) loads them."""

    def link(target: Path, at: Path) -> None:
        # GeneFace++ reads an avatar's dataset and checkpoints by paths relative to its root
        at.parent.mkdir(parents=True, exist_ok=True)
        if at.is_symlink() or at.exists():
            at.unlink()
        at.symlink_to(target)

    def load(avatar_dir: Path, vid: str) -> Callable[[Path, Path], None]:
        os.chdir(root)
        link(avatar_dir / "data" / "binary" / "videos" / vid, root / "data" / "binary" / "videos" / vid)
        for part in ("head", "torso"):
            link(avatar_dir / "nerf" / f"{vid}_{part}", root / "checkpoints" / "motion2video_nerf" / f"{vid}_{part}")
        from inference.genefacepp_infer import GeneFace2Infer
        from utils.commons.hparams import hparams

        infer = GeneFace2Infer("checkpoints/audio2motion_vae", "", "", f"checkpoints/motion2video_nerf/{vid}_torso")
        settings = dict(hparams)

        def render(wav: Path, mp4: Path) -> None:
            # GeneFace++ keeps its settings in one module-level dict: put back this avatar's before each reply
            hparams.clear()
            hparams.update(settings)
            # the same inputs as its command line's defaults
            infer.infer_once({
                "a2m_ckpt": "checkpoints/audio2motion_vae", "postnet_ckpt": "", "head_ckpt": "",
                "torso_ckpt": f"checkpoints/motion2video_nerf/{vid}_torso", "drv_audio_name": str(wav),
                "drv_pose": "nearest", "blink_mode": "none", "temperature": 0.2, "mouth_amp": 0.4,
                "lle_percent": 0.2, "debug": False, "out_name": str(mp4), "raymarching_end_threshold": 0.01,
                "low_memory_usage": False,
            })

        return render

    return load


async def serve(service: RenderService, host: str, port: int, ready: asyncio.Event | None = None) -> None:
    server = await asyncio.start_server(RenderServer(service).handle, host, port, limit=1 << 20)
    log.info("GeneFace++ render worker listening on %s:%d", host, port)
    if ready is not None:
        ready.set()
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=10400)
    ap.add_argument("--keep", type=int, default=3, help="avatars kept loaded on the GPU")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s render-worker %(levelname)s %(message)s")
    asyncio.run(serve(RenderService(geneface_loader(), keep=args.keep), args.host, args.port))


if __name__ == "__main__":
    main()
