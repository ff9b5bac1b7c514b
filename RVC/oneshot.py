"""One sentence in one fresh process — the seed's flow (`docker run --rm` per sentence) without Docker.

    python -m RVC.oneshot --engine lite --params '{"artifact": "..."}' --text "Hello." --out hello.wav

Kept for bench/clone_chunks.py, which measures what the persistent worker saves over it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="lite")
    ap.add_argument("--params", default="{}")
    ap.add_argument("--text", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache-dir", default="var/cache")
    ap.add_argument("--models-dir", default="RVC/models")
    args = ap.parse_args()

    from adapters.media import encode_wav
    from core.types import Audio
    from RVC.service import ServiceConfig, VoiceService

    # torch: exporting the lite generator for onnxruntime costs more than one sentence gains from it
    service = VoiceService(ServiceConfig(Path(args.cache_dir), Path(args.models_dir), lite_runtime="torch"))
    out, rate = service.convert_sync(args.engine, json.loads(args.params), None, 16000, args.text)
    Path(args.out).write_bytes(encode_wav(Audio(out, rate)))


if __name__ == "__main__":
    main()
