"""A 6-sentence answer in a cloned voice: the persistent voice worker vs one fresh process per sentence.

    python bench/clone_chunks.py [--artifact .lite-data/en.lite.pt] [--runs 3]

Both sides start from text (the base TTS speaks each sentence, then the engine converts it), as the seed's
per-sentence container did. Without a lite artifact, a tiny random-weight rvc model stands in: the cost
compared here is loading models, which both engines share.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ANSWER = [
    "Thanks for asking, I had a lovely weekend.",
    "On Saturday I walked along the river with my sister.",
    "We stopped at a small cafe and tried their lemon cake.",
    "In the evening we cooked dinner together and watched an old film.",
    "Sunday was quiet, mostly reading and a little gardening.",
    "How about you, did you do anything fun?",
]


def engine_and_params(args: argparse.Namespace, scratch: Path) -> tuple[str, dict, Path]:
    if args.artifact and Path(args.artifact).is_file():
        return "lite", {"artifact": str(Path(args.artifact).resolve())}, ROOT / "RVC" / "models"
    from tests.voice_fixtures import write_tiny_hubert, write_tiny_rvc

    write_tiny_rvc(scratch / "tiny.pth")
    write_tiny_hubert(scratch / "hubert_base.pt")
    return "rvc", {"model": "tiny.pth"}, scratch


async def persistent(engine: str, params: dict, models: Path, scratch: Path) -> dict:
    from RVC.client import Request, SubprocessWorker

    worker = SubprocessWorker(scratch / "voice.sock", cache_dir=ROOT / "var" / "cache", models_dir=models, preload=engine)
    t0 = time.perf_counter()
    await worker.health()
    async for _ in worker.stream([Request(engine, params, text="Warm up.")]):
        pass
    startup = time.perf_counter() - t0
    runtimes = (await worker.health()).get("lite_runtimes") or []
    try:
        t0 = time.perf_counter()
        first = None
        seconds = 0.0
        async for audio in worker.stream([Request(engine, params, text=s) for s in ANSWER]):
            first = first or time.perf_counter() - t0
            seconds += audio.seconds
        return {"total": time.perf_counter() - t0, "first": first, "audio": seconds, "startup": startup, "runtimes": runtimes}
    finally:
        await worker.close()


def fresh_processes(engine: str, params: dict, models: Path, scratch: Path) -> dict:
    t0 = time.perf_counter()
    first = None
    for i, sentence in enumerate(ANSWER):
        subprocess.run([sys.executable, "-m", "RVC.oneshot", "--engine", engine, "--params", json.dumps(params),
                        "--text", sentence, "--out", str(scratch / f"s{i}.wav"), "--cache-dir", str(ROOT / "var" / "cache"),
                        "--models-dir", str(models)], cwd=ROOT, check=True, capture_output=True)
        first = first or time.perf_counter() - t0
    return {"total": time.perf_counter() - t0, "first": first}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--artifact", default=str(ROOT / ".lite-data" / "en.lite.pt"))
    ap.add_argument("--runs", type=int, default=1, help="repeat both sides this many times (a shared machine's timings wander)")
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        engine, params, models = engine_and_params(args, scratch)
        for _ in range(max(1, args.runs)):  # each run: a new worker, then the fresh processes, on the same sentences
            runs.append((asyncio.run(persistent(engine, params, models, scratch)), fresh_processes(engine, params, models, scratch)))
    totals = [cold["total"] / warm["total"] for warm, cold in runs]
    firsts = [cold["first"] / warm["first"] for warm, cold in runs]
    lines = [
        f"clone_chunks — 6-sentence answer ({runs[0][0]['audio']:.1f} s of speech), engine {engine}, text → base TTS → conversion",
        f"{'':6}{'total s':>22}{'first chunk s':>22}",
        f"{'run':6}{'fresh':>8}{'worker':>8}{'ratio':>7}{'fresh':>8}{'worker':>8}{'ratio':>7}{'worker start-up s':>20}",
    ]
    for i, ((warm, cold), total, first) in enumerate(zip(runs, totals, firsts), 1):
        lines.append(f"{i:<6}{cold['total']:>8.2f}{warm['total']:>8.2f}{total:>6.1f}×{cold['first']:>8.2f}{warm['first']:>8.2f}"
                     f"{first:>6.1f}×{warm['startup']:>20.2f}")
    span = lambda xs: f"{min(xs):.1f}×" if len(xs) == 1 else f"{min(xs):.1f}–{max(xs):.1f}× (median {statistics.median(xs):.1f}×)"
    lines += [
        "fresh: one process per sentence (the seed's flow); worker: the persistent voice worker (subprocess)",
        f"total time: {span(totals)} less (goal ≥ 10×); first chunk: {span(firsts)} sooner",
        "worker start-up is paid once per bot process",
    ]
    if engine == "lite":
        lines.append(f"lite generator: {'/'.join(runs[0][0]['runtimes']) or '?'} in the worker, torch in each fresh process "
                     "(exporting it costs more than one sentence gains)")
    text = "\n".join(lines)
    print(text)
    out = ROOT / "bench" / "results" / "clone_chunks.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
