"""Starting an avatar's training from an uploaded video. The video checks and the engines live in geneface/."""
from __future__ import annotations

import re
from pathlib import Path

from adapters.media import probe
from bot.wiring import Services
from core.errors import BadInput, BadReference
from core.types import Job

_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def avatar_dir(services: Services, name: str) -> Path:
    return services.settings.data_dir / "avatars" / name


async def submit_avatar_training(services: Services, name: str, video: bytes, filename: str = "source.mp4", *,
                                 engine: str = "lite", max_steps: int = 0, gpu: int | None = None,
                                 notify_chat: str | None = None) -> Job:
    if not _NAME.match(name):
        raise BadInput("An avatar name may use letters, digits, '-' and '_' (up to 64).")
    info = probe(video)
    if not info.get("video_codec"):
        raise BadReference("That file has no video in it. Please send a video of the person talking.")
    folder = avatar_dir(services, name)
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / ("source" + (Path(filename).suffix.lower() or ".mp4"))
    source.write_bytes(video)
    return await services.jobs.submit("avatar", name, engine=engine, max_steps=max_steps, gpu=gpu,
                                      params={"source": str(source), "dir": str(folder)}, notify_chat=notify_chat)
