"""Making avatars: from a video (checked, then trained by the worker) or from one photo (ready at once).

The video checks and the engines live in geneface/.
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from pathlib import Path

from adapters.media import Source
from bot.wiring import Services
from core.errors import BadInput
from core.types import Avatar, Job
from storage.avatars import AvatarRepository

_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
ENGINES = ("lite", "geneface")


def avatar_dir(services: Services, name: str) -> Path:
    return services.settings.data_dir / "avatars" / name


# The face tools (dlib) are imported inside these worker-thread functions: a first import takes seconds,
# and on the event loop it would stall a bot's gateway heartbeat.
def _check_video(video: Source, min_seconds: float) -> dict:
    from geneface.intake import IntakeRules, check_video

    return check_video(video, IntakeRules(min_seconds=min_seconds))


def _check_photo(photo: bytes):
    from geneface.photo import check_photo

    return check_photo(photo)


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise BadInput("An avatar name may use letters, digits, '-' and '_' (up to 64).")


async def submit_avatar_training(services: Services, name: str, video: Source, filename: str = "source.mp4", *,
                                 engine: str = "lite", max_steps: int = 0, gpu: int | None = None,
                                 notify_chat: str | None = None, config: str = "full") -> Job:
    """Check the video (length, one clear face, frame rate, size, sound), keep it, and queue the training.

    `video` is its bytes or the path of a file holding it (a large upload is streamed to disk, never held);
    a file is moved into the avatar's folder."""
    _check_name(name)
    if engine not in ENGINES:
        raise BadInput(f"Unknown avatar engine '{engine}'; use one of: {', '.join(ENGINES)}.")
    min_seconds = services.settings.avatar_min_seconds
    # refused here, before anything is written or queued
    measured = await asyncio.to_thread(_check_video, video, min_seconds)
    folder = avatar_dir(services, name)
    folder.mkdir(parents=True, exist_ok=True)
    # each upload keeps its own file: a queued or retried job trains on the video it was given
    stamp = time.strftime("%Y%m%d-%H%M%S")
    source = folder / f"source-{stamp}{Path(filename).suffix.lower() or '.mp4'}"
    if isinstance(video, (bytes, bytearray)):
        await asyncio.to_thread(source.write_bytes, video)
    else:  # an upload already streamed to disk is moved, never read into memory
        await asyncio.to_thread(shutil.move, os.fspath(video), source)
    await AvatarRepository(services.sessions).new_source(name, engine, str(source), {"video": measured})
    params = {"source": str(source), "dir": str(folder), "config": config, "min_seconds": min_seconds}
    if engine == "geneface":
        # the worker is told where its containers come from, rather than reading the bots' settings
        s = services.settings
        params.update(image=s.geneface_image, docker_url=s.docker_url, data_dir=str(s.data_dir), gpus=s.geneface_gpu_list,
                      assets_dir=str(s.geneface_assets_dir) if s.geneface_assets_dir else None)
    return await services.jobs.submit("avatar", name, engine=engine, max_steps=max_steps, gpu=gpu, params=params,
                                      notify_chat=notify_chat)


async def add_photo_avatar(services: Services, name: str, photo: bytes) -> Avatar:
    """One portrait → an avatar that talks at once (the photo engine), no training: its next version."""
    _check_name(name)
    image = await asyncio.to_thread(_check_photo, photo)
    folder = avatar_dir(services, name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"photo-{time.strftime('%Y%m%d-%H%M%S')}.png"
    from PIL import Image

    await asyncio.to_thread(Image.fromarray(image).save, path)
    avatars = AvatarRepository(services.sessions)
    await avatars.new_source(name, "photo", str(path), {})
    await avatars.add_version(name, str(path), {"photo": path.name}, engine="photo")
    return await avatars.get(name)


async def list_avatars(services: Services) -> list[Avatar]:
    return await AvatarRepository(services.sessions).list()


async def find_avatar(services: Services, name: str) -> Avatar | None:
    return await AvatarRepository(services.sessions).find(name)
