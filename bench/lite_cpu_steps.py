"""Seconds per lite fine-tuning step on a few CPU threads: how many steps the CPU path's time budget buys.

    python bench/lite_cpu_steps.py --threads 2 [--steps 6]

Each variant (windows per step, with or without the discriminators) trains on random data of the real shapes
(the time of a step does not depend on what the data says); the first two steps build kernels and are not counted.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = ((8, True), (8, False), (4, True), (16, False))


def main() -> None:
    import torch

    from RVC.lite_model import LiteConfig
    from RVC.lite_train import train

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = 6000  # one minute of 10-ms frames
    data = {"audio": (rng.standard_normal(n * 160) * 3000).astype(np.int16),
            "f0": rng.uniform(150, 250, n).astype(np.float32),
            "content": rng.integers(-60, 60, (n // 2, 128)).astype(np.int8),
            "content_low": rng.integers(-60, 60, (3, n // 2, 128)).astype(np.int8),
            "content_scale": np.float32(1 / 24)}
    print(f"lite fine-tuning step on the CPU, {torch.get_num_threads()} threads, torch {torch.__version__}")
    for batch, adversarial in VARIANTS:
        cfg = LiteConfig(batch_size=batch, adversarial=adversarial)
        times: list[float] = []
        last = [time.perf_counter()]

        def tick(step, total, elapsed, losses, times=times, last=last):
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now

        train(data, cfg, max_steps=args.steps + 2, progress=tick, report_every=1, device="cpu")
        timed = np.array(times[2:])
        print(f"batch {batch:2d} {'GAN     ' if adversarial else 'mel only'}: {timed.mean():6.2f} s/step "
              f"(min {timed.min():.2f}, max {timed.max():.2f}, {len(timed)} steps) → "
              f"{1500 / timed.mean():6.0f} steps in 25 min", flush=True)


if __name__ == "__main__":
    main()
