"""The engines on Ray Serve (DOPPEL_ENGINES=ray) against the engines in-process, and Ray replicas against load.

Local (default): single-user voice-in → first-audio latency, the same default offline engines in-process and on a
Ray of this machine, interleaved clip by clip (the order alternating), each clip a fresh conversation at
temperature 0 so both modes write the same answer. p50 of each with a bootstrap 95 % interval, and the ratio
Ray / in-process with a paired bootstrap interval (goal <= 1.15x).

    .venv/bin/python bench/scale.py [--clips 10] [--write]

Load (`--replicas 1,2,4,8 --users 1,20`, for a many-core or GPU machine): for each replica count every engine
deployment runs that many replicas; N users each ask --rounds voice questions back to back, all at once.
Prints throughput (replies/s) per replica count, scaling efficiency 1 -> 4 replicas (goal >= 0.8), p95 of the
whole reply (the voice note complete) and of the first audio at the most users vs one user with the most
replicas (goal <= 3x), and the errors (goal 0).

    .venv/bin/python bench/scale.py --replicas 1,2,4,8 --users 1,20 [--rounds 3] [--cpus-per-replica 2] [--write]

Results go to bench/results/scale.txt only with --write.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# the deployments run their OpenMP builds (llama.cpp, CTranslate2) with waiting threads asleep (deploy/graph.py); the
# in-process engines get the same here, before those libraries load, so both modes run the same engines the same way
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from adapters.media import decode_audio
from adapters.settings import Settings
from bench.latency import pct
from bot.wiring import build_engines, build_services
from core.pipeline import ReplyRequest
from core.types import ConversationKey, ReplyDone
from tests.speech import speech_clips

OUT = ROOT / "bench" / "results" / "scale.txt"


def bootstrap_median(values: list[float], runs: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    v = np.asarray(values)
    meds = np.median(v[rng.integers(0, len(v), (runs, len(v)))], axis=1)
    return float(np.percentile(meds, 2.5)), float(np.percentile(meds, 97.5))


def bootstrap_ratio(a: list[float], b: list[float], runs: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % interval of median(a) / median(b), resampling the clips (each clip was asked in both modes)."""
    rng = np.random.default_rng(seed)
    x, y = np.asarray(a), np.asarray(b)
    idx = rng.integers(0, len(x), (runs, len(x)))
    ratios = np.median(x[idx], axis=1) / np.median(y[idx], axis=1)
    return float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))


def bench_settings(data_dir: Path, **overrides) -> Settings:
    # temperature 0: both modes write the same answer to the same question, so they do the same work
    return Settings(_env_file=None, data_dir=data_dir, llm_temperature=0.0, **overrides)


def start_ray(cpus: int | None) -> None:
    import ray

    from deploy.cluster import local_ray_environment

    local_ray_environment()  # replicas at the same priority as the in-process engines they are compared with
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, object_store_memory=200 * 1024**2,
             _node_ip_address="127.0.0.1", log_to_driver=False)


async def one_reply(services, audio, key: str) -> dict[str, float]:
    persona = services.personas.get("default")
    request = ReplyRequest(key=ConversationKey(key, key), persona=persona, audio=audio, language="en")
    t0 = time.perf_counter()
    timings: dict = {}
    async for frame in services.pipeline.run(request):
        if isinstance(frame, ReplyDone):
            timings = {t.stage: t.seconds for t in frame.timings}
            timings["answer"] = frame.text
    timings["wall"] = time.perf_counter() - t0
    await services.history.reset(request.key)
    return timings


async def local(args) -> list[str]:
    from deploy.cluster import config_of, deploy

    clips = [c for c in speech_clips("en") if 4.0 <= c[1] <= 7.0][: args.clips]
    audios = [decode_audio(p.read_bytes()) for p, _, _ in clips]
    with tempfile.TemporaryDirectory() as tmp:
        here_settings = bench_settings(Path(tmp) / "inprocess")
        here_engines = build_engines(here_settings)
        for engine in (here_engines.recognizer, here_engines.chat_model, here_engines.synthesizers[0]):
            engine.warm_up()  # a long-lived server has them loaded; the replicas load theirs as they start
        here = await build_services(here_settings, engines=here_engines)
        start_ray(os.cpu_count())
        ray_settings = bench_settings(Path(tmp) / "ray", engines="ray")
        # one replica of each engine, asking for no logical CPU: five would not fit two cores' worth of requests
        deploy(ray_settings, config_of(ray_settings).with_replicas(1).with_actor_options(num_cpus=0))
        there = await build_services(ray_settings, engines=build_engines(ray_settings))
        try:
            for services in (here, there):  # a first reply each: the first generation and the first sentence cost more
                await one_reply(services, audios[0], "warm")
            stages: dict[str, dict[str, list[float]]] = {"in-process": {}, "ray": {}}
            for i, audio in enumerate(audios):
                modes = [("in-process", here), ("ray", there)]
                for name, services in (modes if i % 2 == 0 else modes[::-1]):
                    for stage, value in (await one_reply(services, audio, f"{name}:{i}")).items():
                        stages[name].setdefault(stage, []).append(value)
        finally:
            await there.close()
            await here.close()
            await here_engines.close()
    first = {name: stages[name]["first_audio"] for name in stages}
    a, b = first["ray"], first["in-process"]
    ratio = statistics.median(a) / statistics.median(b)
    lo, hi = bootstrap_ratio(a, b)
    lines = [f"doppel on Ray Serve vs in-process: voice in -> first audio, one user, {len(clips)} real questions of "
             f"{min(c[1] for c in clips):.1f}-{max(c[1] for c in clips):.1f} s each asked in both modes (interleaved), "
             f"default offline engines at temperature 0, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} in both, "
             f"{os.cpu_count()} CPU cores, Ray {ray_version()} on 127.0.0.1 (one replica per engine)", ""]
    for name in ("in-process", "ray"):
        mlo, mhi = bootstrap_median(first[name])
        lines.append(f"  {name:<11} first audio p50 {statistics.median(first[name]):.3f} s (95 % CI {mlo:.3f}-{mhi:.3f}), "
                     f"p95 {pct(first[name], .95):.3f} s")
        lines.append("    stage p50 s: " + ", ".join(f"{stage} {pct(stages[name][stage], .5):.3f}" for stage in
                                                 ("asr", "llm_first_token", "llm_first_sentence", "tts", "first_audio", "total")
                                                 if stage in stages[name]))
    verdict = ("met" if hi <= 1.15 else f"met at the median, though the interval reaches {hi:.2f}x") if ratio <= 1.15 else "NOT met"
    lines += ["", f"ratio ray / in-process, p50 first audio: {ratio:.3f}x (95 % CI {lo:.3f}-{hi:.3f}); goal <= 1.15x: {verdict}",
              "  per clip (in-process, ray): " + ", ".join(f"{x:.2f}/{y:.2f}" for x, y in zip(b, a)),
              f"same answer in both modes (the same work): {sum(x == y for x, y in zip(*(stages[n]['answer'] for n in stages)))} "
              f"of {len(audios)}"]
    for x, y in zip(*(stages[n]["answer"] for n in stages)):
        if x != y:
            lines.append(f"  differs: in-process {x!r} / ray {y!r}")
    return lines


async def load(args) -> list[str]:
    from deploy.cluster import config_of, deploy

    replicas = [int(r) for r in args.replicas.split(",")]
    users = [int(u) for u in args.users.split(",")]
    clips = [c for c in speech_clips("en") if 4.0 <= c[1] <= 7.0][:10]
    audios = [decode_audio(p.read_bytes()) for p, _, _ in clips]
    start_ray(None)
    results: dict[tuple[int, int], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(Path(tmp), engines="ray")
        base = config_of(settings)
        services = None
        for r in replicas:
            config = base.with_replicas(r).with_actor_options(num_cpus=args.cpus_per_replica)
            t0 = time.perf_counter()
            deploy(settings, config)
            print(f"{r} replica(s) per engine running after {time.perf_counter() - t0:.0f} s", flush=True)
            if services is None:
                services = await build_services(settings, engines=build_engines(settings))
            # every replica's first generation before timing (Serve spreads concurrent requests over the replicas)
            await asyncio.gather(*(one_reply(services, audios[i % len(audios)], f"warm:{r}:{i}") for i in range(2 * r)),
                                 return_exceptions=True)
            for n in users:
                results[(r, n)] = await run_users(services, audios, n, args.rounds, f"{r}:{n}")
                s = results[(r, n)]
                print(f"  {r} replicas, {n:>2} users: {s['throughput']:.2f} replies/s, p95 total {s['p95_total']:.2f} s, "
                      f"p95 first audio {s['p95_first']:.2f} s, errors {s['errors']}", flush=True)
        await services.close()
    return load_report(results, replicas, users, args)


async def run_users(services, audios, n: int, rounds: int, tag: str) -> dict:
    totals, firsts, errors = [], [], []

    async def user(u: int) -> None:
        for k in range(rounds):
            try:
                t = await one_reply(services, audios[(u + k) % len(audios)], f"load:{tag}:{u}:{k}")
                totals.append(t["wall"])
                firsts.append(t["first_audio"])
            except Exception as exc:  # counted and shown, never hidden
                errors.append(repr(exc)[:200])

    t0 = time.perf_counter()
    await asyncio.gather(*(user(u) for u in range(n)))
    wall = time.perf_counter() - t0
    return {"throughput": len(totals) / wall, "p95_total": pct(totals, .95) if totals else float("nan"),
            "p95_first": pct(firsts, .95) if firsts else float("nan"), "p50_total": pct(totals, .5) if totals else float("nan"),
            "errors": len(errors), "error_examples": errors[:3], "replies": len(totals), "wall": wall}


def load_report(results: dict, replicas: list[int], users: list[int], args) -> list[str]:
    top = max(users)
    lines = [f"doppel engines on Ray Serve under load: {os.cpu_count()} CPU cores, Ray {ray_version()}, every engine deployment "
             f"at R replicas ({args.cpus_per_replica} logical CPU each), N users each asking {args.rounds} real voice "
             "questions back to back, default offline engines at temperature 0", "",
             f"  {'R':>2} {'N':>3} {'replies/s':>10} {'p50 total s':>12} {'p95 total s':>12} {'p95 first s':>12} {'errors':>7}"]
    for (r, n), s in sorted(results.items()):
        lines.append(f"  {r:>2} {n:>3} {s['throughput']:>10.2f} {s['p50_total']:>12.2f} {s['p95_total']:>12.2f} "
                     f"{s['p95_first']:>12.2f} {s['errors']:>7}")
        lines += [f"       error: {e}" for e in s["error_examples"]]
    lines.append("")
    if 1 in replicas and 4 in replicas:
        eff = results[(4, top)]["throughput"] / (4 * results[(1, top)]["throughput"])
        lines.append(f"scaling efficiency 1 -> 4 replicas at {top} users: {eff:.2f} (goal >= 0.8: {'met' if eff >= 0.8 else 'NOT met'})")
    most = max(replicas)
    if 1 in users and top > 1:
        ratio = results[(most, top)]["p95_total"] / results[(most, 1)]["p95_total"]
        first = results[(most, top)]["p95_first"] / results[(most, 1)]["p95_first"]
        judged = f"goal <= 3x: {'met' if ratio <= 3 else 'NOT met'}" if top >= 20 else "the goal is for 20 users: not judged"
        lines.append(f"p95 whole reply, {top} users vs 1 at {most} replicas: {ratio:.2f}x ({judged}); "
                     f"p95 first audio {first:.2f}x")
    errors = sum(s["errors"] for s in results.values())
    lines.append(f"errors: {errors} (goal 0)")
    return lines


def ray_version() -> str:
    import ray

    return ray.__version__


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=10, help="local mode: questions asked in each mode (>= 10)")
    parser.add_argument("--replicas", help="load mode: replica counts, e.g. 1,2,4,8")
    parser.add_argument("--users", default="1,20", help="load mode: concurrent users, e.g. 1,20")
    parser.add_argument("--rounds", type=int, default=3, help="load mode: questions each user asks")
    parser.add_argument("--cpus-per-replica", type=float, default=2.0, help="load mode: logical CPUs a replica asks Ray for")
    parser.add_argument("--write", action="store_true", help=f"also write the figures to {OUT.relative_to(ROOT)}")
    args = parser.parse_args()
    lines = await (load(args) if args.replicas else local(args))
    text = "\n".join(lines)
    print(text)
    if args.write:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        command = "bench/scale.py " + " ".join(sys.argv[1:])
        OUT.write_text(f"$ {command}\n{text}\n" if not OUT.exists() else OUT.read_text() + f"\n$ {command}\n{text}\n")


if __name__ == "__main__":
    asyncio.run(main())
