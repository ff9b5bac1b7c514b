"""How a GeneFace++ container sees the host: where the project's code is in the image, the user it runs as, its
environment, the assets folder mounted where the libraries look, and the video id its scripts name files after.
Shared by the training stages (geneface/docker_engine.py) and the render containers (geneface/render_worker.py).
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from geneface import assets

ROOT = "/opt/GeneFacePlusPlus"


def video_id(avatar: str) -> str:
    """GeneFace++ names files and configs after the video id, and its scripts `pkill -f` patterns that a name
    could match ("void*" is the regex voi+d*, so any "voi" kills run.sh itself) or break (regex characters).
    Keep to [A-Za-z0-9_], never "voi"; a short hash keeps altered names apart."""
    safe = re.sub(r"[^A-Za-z0-9_]", "_", avatar).replace("voi", "vo_i")
    if safe != avatar:
        safe += "_" + hashlib.sha1(avatar.encode()).hexdigest()[:6]
    return "doppel_" + safe


def container_user() -> str:
    """The host user, so what the container writes into mounted folders stays the host user's."""
    return f"{os.getuid()}:{os.getgid()}"


def container_env() -> dict[str, str]:
    return {
        "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1",
        # inside, the one GPU passed in is always device 0
        "CUDA_VISIBLE_DEVICES": "0",
        # the host user has no home in the image: caches that must be writable go to /tmp
        "HOME": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib", "NUMBA_CACHE_DIR": "/tmp/numba",
        "TORCH_EXTENSIONS_DIR": "/tmp/torch_extensions",
        **assets.environment(),
    }


def asset_volumes(root: Path) -> dict[str, dict[str, str]]:
    """The assets folder read-only at assets.MOUNT, and the hand-distributed parts where GeneFace++ looks for them."""
    r = Path(root).resolve()
    return {
        str(r): {"bind": assets.MOUNT, "mode": "ro"},
        str(r / "BFM"): {"bind": f"{ROOT}/deep_3drecon/BFM", "mode": "ro"},
        str(r / "audio2motion_vae"): {"bind": f"{ROOT}/checkpoints/audio2motion_vae", "mode": "ro"},
    }
