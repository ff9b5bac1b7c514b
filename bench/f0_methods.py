"""F0 for RVC voices: doppel's YIN and librosa's pYIN against harvest, the tracker RVC models are trained on.

    python bench/f0_methods.py [--clips 6] [--out bench/results/f0_methods.txt]

Real speech of the test set (tests/speech.py: en, fr, es), high-passed as the rvc engine does, analysed by each
method at 10 ms. There is no ground-truth pitch for these recordings, so harvest is the reference: what
matters to an RVC model is how close its input pitch is to what it saw in training. Per clip: voicing
agreement, gross pitch errors (both voiced, more than 20 % apart), octave errors, the median deviation in
cents where both are voiced, and speed; the table gives the mean over clips with a 95 % interval.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.speech import speech_clips


def clips(per_language: int) -> list[Path]:
    out = []
    for lang in ("en", "fr", "es"):
        out += [path for path, _, _ in speech_clips(lang, min_seconds=2.5)[:per_language]]
    return out


def compare(f0: np.ndarray, ref: np.ndarray) -> dict:
    n = min(len(f0), len(ref))
    f0, ref = f0[:n], ref[:n]
    both = (f0 > 0) & (ref > 0)
    ratio = f0[both] / ref[both]
    cents = np.abs(1200 * np.log2(ratio))
    return {
        "voicing agreement %": 100 * float(np.mean((f0 > 0) == (ref > 0))),
        "gross errors %": 100 * float(np.mean(np.abs(ratio - 1) > 0.2)) if both.any() else float("nan"),
        "octave errors %": 100 * float(np.mean((np.abs(ratio - 2) < 0.2) | (np.abs(ratio - 0.5) < 0.1))) if both.any() else float("nan"),
        "median deviation, cents": float(np.median(cents)) if both.any() else float("nan"),
    }


def interval(values: list[float]) -> str:
    """Mean ± a 95 % t interval (small samples)."""
    from scipy import stats

    v = [x for x in values if x == x]
    if len(v) < 2:
        return f"{v[0]:.2f}" if v else "-"
    mean, sem = statistics.fmean(v), statistics.stdev(v) / len(v) ** 0.5
    half = stats.t.ppf(0.975, len(v) - 1) * sem
    return f"{mean:6.2f} ± {half:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=6, help="clips per language")
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    from adapters.media import decode_audio
    from RVC.engines.rvc import high_pass
    from RVC.features import RATE, to_rate
    from RVC.pitch import estimate_f0

    methods = ("harvest", "yin", "pyin")
    scores: dict[str, list[dict]] = {m: [] for m in methods[1:]}
    speed: dict[str, list[float]] = {m: [] for m in methods}
    unvoiced: dict[str, list[float]] = {m: [] for m in methods}
    files = clips(args.clips)
    total = 0.0
    for path in files:
        audio = decode_audio(path.read_bytes())
        x = high_pass(to_rate(audio.samples, audio.sample_rate, RATE))
        seconds = len(x) / RATE
        total += seconds
        tracks = {}
        for m in methods:
            t0 = time.perf_counter()
            tracks[m] = estimate_f0(x, m, len(x) // 160 + 1)
            speed[m].append(seconds / (time.perf_counter() - t0))
            unvoiced[m].append(100 * float(np.mean(tracks[m] == 0)))
        for m in methods[1:]:
            scores[m].append(compare(tracks[m], tracks["harvest"]))

    lines = [f"F0 methods against harvest (the tracker RVC models are trained on): {len(files)} real clips "
             f"(en, fr, es; {total:.0f} s), mean over clips ± 95 % t interval", ""]
    keys = list(next(iter(scores.values()))[0])
    lines.append(f"{'':28}" + "".join(f"{m:>18}" for m in methods[1:]))
    for k in keys:
        lines.append(f"{k:28}" + "".join(f"{interval([s[k] for s in scores[m]]):>18}" for m in methods[1:]))
    lines.append("")
    lines.append(f"{'':28}" + "".join(f"{m:>18}" for m in methods))
    lines.append(f"{'frames unvoiced %':28}" + "".join(f"{interval(unvoiced[m]):>18}" for m in methods))
    lines.append(f"{'speed, x real time':28}" + "".join(f"{interval(speed[m]):>18}" for m in methods))
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
