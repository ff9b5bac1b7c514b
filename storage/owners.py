"""Who holds a claim on shared work (a training job, a platform update): "host:pid", or "host:pid/tag" when one
process runs several holders. A holder that cannot renew its claim any more is known gone in two ways: on
this host, its process has exited; anywhere, its claim has not been renewed in time."""
from __future__ import annotations

import os
import secrets
import socket


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def replica_id() -> str:
    """A bot replica's own holder id: unique even for several replicas in one process."""
    return f"{process_id()}/{secrets.token_hex(4)}"


def on_this_host(holder: str | None) -> bool:
    return holder is not None and bool(holder) and holder.split("/", 1)[0].rpartition(":")[0] == socket.gethostname()


def alive(holder: str | None) -> bool:
    """False only when the holder ran on this host and its process is gone; other hosts go by staleness."""
    if not holder:
        return False
    host, _, pid = holder.split("/", 1)[0].rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True
