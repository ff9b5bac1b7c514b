"""The web tests' setting: our app under a real uvicorn on 127.0.0.1, and Debian's headless Chromium."""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable, TypeVar

import numpy as np
import uvicorn

from bot.web.app import create_app
from bot.wiring import Services
from core.types import Audio

T = TypeVar("T")

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1100,900",
    # the reply must be allowed to start playing without a click, as it does after a real user's gesture
    "--autoplay-policy=no-user-gesture-required",
)


@dataclass
class LiveServer:
    url: str
    services: Services
    app: object = None


@asynccontextmanager
async def live_server(services: Services, *, job_poll_seconds: float = 0.2) -> AsyncIterator[LiveServer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(services, job_poll_seconds=job_poll_seconds)
    config = uvicorn.Config(app, log_level="warning",
                            lifespan="off", timeout_graceful_shutdown=1, proxy_headers=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(200):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield LiveServer(f"http://127.0.0.1:{port}", services, app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def chromium(profile_dir: Path, *extra_flags: str):
    """A fresh headless Chromium; fails (never skips) when the browser is missing, since CI installs it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser and driver, "Debian's chromium and chromium-driver are needed: `make browser` installs them"
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for downloads
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, *extra_flags):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


async def in_thread(fn: Callable[..., T], *args) -> T:
    """Selenium blocks; the server runs on this event loop, so the browser is driven from a thread."""
    return await asyncio.to_thread(fn, *args)


class LevelMeterAvatar:
    """An AvatarRenderer for the web tests: a real H.264 + AAC MP4 of a bar that follows the speech's loudness.

    The web channel only carries whatever MP4 the renderer makes; this keeps the browser test off a trained face.
    """

    fps = 10.0

    async def is_ready(self, avatar: str) -> bool:
        return avatar == "meter"

    async def face_stream(self, avatar: str, size: int) -> None:
        return None  # no live face: live talk in these tests is voice only

    async def render(self, audio: Audio, avatar: str, text: str = "") -> bytes:
        from adapters.video import encode_mp4

        step = int(audio.sample_rate / self.fps)
        frames = []
        for start in range(0, max(len(audio.samples), step), step):
            level = float(np.sqrt(np.mean(np.square(audio.samples[start:start + step]))) if start < len(audio.samples) else 0.0)
            frame = np.full((96, 96, 3), 40, dtype=np.uint8)
            height = int(min(1.0, level * 6) * 80)
            frame[88 - height:88, 36:60] = (230, 120, 40)
            frames.append(frame)
        return await asyncio.to_thread(encode_mp4, frames, self.fps, audio)
