"""`python -m RVC.healthcheck --port N`: exit 0 when the worker answers a health request (the container's HEALTHCHECK)."""
from __future__ import annotations

import argparse
import asyncio
import sys

from RVC.client import SocketWorker, WorkerDown


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=10300)
    ap.add_argument("--socket")
    args = ap.parse_args()
    try:
        print(asyncio.run(SocketWorker(args.socket, args.host, args.port, timeout=5).health()))
    except (WorkerDown, OSError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
