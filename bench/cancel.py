"""How long a training job takes to stop after an admin cancels it, by stage: the worker's cancel watcher
(on, as shipped) against relying on the handler's next progress report (off, how cancels landed before).

    python bench/cancel.py [--runs 3]

Stages: a voice's feature extraction (4 clips), an avatar's face tracking (22-s video), an avatar's training.
Each run queues a fresh job, waits until it is in the stage, asks to cancel, and times the job's status
turning "cancelled". CPU only; tiny configurations, as the tests use.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}  # two-sided t, df = n - 1


async def _queue(services, stage: str, scratch: Path):
    from bot.common.avatars import submit_avatar_training
    from bot.common.voices import add_voice
    from tests.avatar_clips import training_mp4
    from tests.speech import speech_clips

    if stage == "voice: features":
        clips = [(p.name, p.read_bytes()) for p, _, _ in speech_clips("en", 4.0)[:4]]
        return (await add_voice(services, "bench", clips, ["words"] * 4, max_steps=400)).job, "features"
    services.settings.avatar_min_seconds = 10.0
    job = await submit_avatar_training(services, "bench", training_mp4(), config="tiny", max_steps=100_000)
    return job, ("tracking the face" if stage == "avatar: face tracking" else "step ")


async def one(stage: str, watcher: bool, engines) -> float:
    from adapters.settings import Settings
    from bot.wiring import build_services
    from bot.worker import Worker
    from core.types import JobStatus

    with tempfile.TemporaryDirectory() as tmp:
        services = await build_services(Settings(_env_file=None, data_dir=Path(tmp) / "var", voice_train_profile="tiny"),
                                        engines=engines)
        try:
            job, marker = await _queue(services, stage, Path(tmp))
            worker = Worker(services.jobs, services.settings.data_dir, cancel_poll_seconds=0.5 if watcher else 1e9)
            run = asyncio.create_task(worker.run_once())
            while marker not in (await services.jobs.get(job.id)).log_tail:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # well inside the stage
            asked = time.perf_counter()
            await services.jobs.cancel(job.id)
            while (await services.jobs.get(job.id)).status is not JobStatus.CANCELLED:
                await asyncio.sleep(0.05)
            took = time.perf_counter() - asked
            await asyncio.wait_for(run, 600)
            return took
        finally:
            await services.close()


def summary(xs: list[float]) -> str:
    mean = statistics.mean(xs)
    half = T95.get(len(xs) - 1, 2.0) * statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else float("nan")
    return f"{mean:6.2f} s ± {half:.2f} (95 % CI; {', '.join(f'{x:.2f}' for x in xs)})"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from adapters.settings import Settings
    from bot.wiring import build_engines

    with tempfile.TemporaryDirectory() as tmp:
        engines = build_engines(Settings(_env_file=None, data_dir=Path(tmp)))
        try:
            print(f"cancel → job marked cancelled, {args.runs} runs per cell")
            for stage in ("voice: features", "avatar: face tracking", "avatar: training"):
                on = [await one(stage, True, engines) for _ in range(args.runs)]
                off = [await one(stage, False, engines) for _ in range(args.runs)]
                print(f"{stage:24s} watcher on  {summary(on)}")
                print(f"{'':24s} watcher off {summary(off)}   off/on {statistics.mean(off) / statistics.mean(on):.1f}x")
        finally:
            await engines.close()


if __name__ == "__main__":
    asyncio.run(main())
