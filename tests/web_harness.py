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

import uvicorn

from bot.web.app import create_app
from bot.wiring import Services

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


@asynccontextmanager
async def live_server(services: Services, *, job_poll_seconds: float = 0.2) -> AsyncIterator[LiveServer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(services, job_poll_seconds=job_poll_seconds), log_level="warning",
                            lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(200):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield LiveServer(f"http://127.0.0.1:{port}", services)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def chromium(profile_dir: Path):
    """A fresh headless Chromium; fails (never skips) when the browser is missing, since CI installs it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser and driver, "Debian's chromium and chromium-driver are needed: `make browser` installs them"
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for downloads
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


async def in_thread(fn: Callable[..., T], *args) -> T:
    """Selenium blocks; the server runs on this event loop, so the browser is driven from a thread."""
    return await asyncio.to_thread(fn, *args)
