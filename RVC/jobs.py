"""The "voice" training job: the admin's recordings → a versioned lite artifact → the voice marked ready.

Steps: check the recordings (refuse bad ones before any training), compute the training set once (kept in
the job's folder, so a resumed job skips it), train with periodic checkpoints, export `lite-vN.pt` beside
the clips, and record it on the voice.
"""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np

from core.errors import BadReference
from core.jobs import JobContext

PROFILES = ("full", "tiny")
# windows per step and whether the discriminators train, when a voice is fine-tuned on the CPU: 25 min on 2 cores
# give about 1,140 mel-only steps or 330 with discriminators (bench/lite_cpu_steps.py), and the mel-only voice
# came out closer to the speaker on both scores (bench/results/lite_voice_goals.txt)
CPU_FINE_TUNE = (8, False)


def _profile(ctx: JobContext) -> str:
    return str(ctx.params.get("profile") or os.environ.get("DOPPEL_VOICE_TRAIN_PROFILE") or "full")


def _clips(folder: Path) -> list[np.ndarray]:
    from adapters.media import decode_audio

    paths = sorted(folder.glob("clip-*.wav"))
    if not paths:
        raise BadReference(f"The voice has no recordings to learn from ({folder.name}).")
    return [decode_audio(p.read_bytes()).samples for p in paths]


def next_artifact(folder: Path) -> Path:
    versions = [int(p.stem.split("-v")[-1]) for p in folder.glob("lite-v*.pt") if p.stem.split("-v")[-1].isdigit()]
    return folder / f"lite-v{max(versions, default=0) + 1}.pt"


async def train_voice(ctx: JobContext) -> str:
    import torch

    from RVC.features import bundled_content
    from RVC.lite_base import base_projection, load_base
    from RVC.lite_data import build_dataset
    from RVC.lite_model import LiteConfig
    from RVC.lite_train import export, train
    from RVC.reference import ReferenceLimits, check_reference
    from core.types import Audio

    folder = Path(ctx.params["dir"])
    work = Path(ctx.work_dir)
    name = ctx.job.target
    profile = _profile(ctx)
    gpu = torch.cuda.is_available()
    # every full voice starts from the shipped base (RVC/lite_base.py): on two CPU cores the budget buys a few
    # hundred steps, enough to move a speaking network's timbre, far too few to teach a blank one to speak
    base = None if profile == "tiny" else load_base()
    cfg = LiteConfig.tiny() if profile == "tiny" else (LiteConfig.from_dict(base["config"]) if base else LiteConfig())
    if base is not None and not gpu:
        cfg.batch_size, cfg.adversarial = CPU_FINE_TUNE
    min_seconds = float(ctx.params.get("min_seconds", 2.0 if profile == "tiny" else 30.0))
    max_steps = ctx.job.max_steps or (20 if profile == "tiny" else (100_000 if gpu else 20_000))
    max_seconds = float(ctx.params.get("max_seconds", 20 if profile == "tiny" else (540 if gpu else 1500)))
    loop = asyncio.get_running_loop()

    dataset_path = work / "dataset.npz"
    if dataset_path.exists():
        data = dict(np.load(dataset_path))
    else:
        clips = await asyncio.to_thread(_clips, folder)
        await asyncio.to_thread(check_reference, [Audio(c, 16000) for c in clips],
                                ReferenceLimits(min_speech_seconds=min_seconds))
        await ctx.report(step=0, progress=0.0, log_line=f"{len(clips)} recording(s) checked; computing features")
        cache = Path(ctx.params.get("cache_dir") or folder.parents[1] / "cache")
        content = bundled_content(cache)
        projection = base_projection(base) if base is not None else None
        data = await asyncio.to_thread(build_dataset, clips, content, cfg.content_dims, None, projection)
        np.savez(dataset_path, **data)

    resume = None
    if ctx.checkpoint and Path(ctx.checkpoint).is_file():
        resume = torch.load(ctx.checkpoint, map_location="cpu", weights_only=True)
    checkpoint_every = max(50, max_steps // 10) if gpu else 50  # a CPU step takes seconds

    def progress(step: int, total: int, elapsed: float, losses: dict) -> None:
        """Runs in the training thread; a cancel raised by report stops training there."""
        checkpoint = None
        if step % checkpoint_every == 0:
            checkpoint = str(work / "checkpoint.pt")
            torch.save(current["state_fn"](step), checkpoint + ".tmp")
            os.replace(checkpoint + ".tmp", checkpoint)
        line = f"step {step}: " + " ".join(f"{k} {v:.3f}" for k, v in losses.items())
        fraction = min(1.0, max(step / total, elapsed / max_seconds))
        asyncio.run_coroutine_threadsafe(
            ctx.report(step=step, progress=0.05 + 0.9 * fraction, checkpoint=checkpoint, log_line=line), loop).result()

    current: dict = {}
    t0 = time.perf_counter()

    def run():
        return train(data, cfg, max_steps=max_steps, max_seconds=max_seconds, progress=progress,
                     report_every=max(10, checkpoint_every // 5) if gpu else 10, resume=resume, state_hook=current, base=base)

    net, state = await asyncio.to_thread(run)
    artifact = export(net, data, next_artifact(folder), steps=state["step"], seconds=time.perf_counter() - t0)
    from storage.voices import VoiceRepository

    await VoiceRepository(ctx.sessions).set_ready(name, True, params={"artifact": str(artifact), "version": int(artifact.stem.split("-v")[-1])})
    await ctx.report(step=state["step"], progress=1.0, log_line=f"saved {artifact.name}")
    return f"voice '{name}' is ready ({artifact.name}, {state['step']} steps)"
