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
from typing import TYPE_CHECKING, cast

import numpy as np

from core.errors import BadReference
from core.jobs import JobContext

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

PROFILES = ("full", "tiny")
CHECKPOINT_STEPS = 50
CHECKPOINT_SECONDS = 30.0  # a run killed between step checkpoints loses at most this much
REPORT_SECONDS = 1.0  # progress reaches the database at most this often (every step is checked for a cancel)


def _profile(ctx: JobContext) -> str:
    """Chosen by whoever queued the job (bot/common/voices.py), so intake and training use the same rules."""
    profile = str(ctx.params.get("profile") or "full")
    if profile not in PROFILES:
        raise ValueError(f"unknown training profile {profile!r}")
    return profile


def _clips(folder: Path) -> list[np.ndarray]:
    from adapters.media import decode_audio
    from RVC.quality_gate import training_clips

    paths = training_clips(folder)  # a few clips may be held apart for the quality gate
    if not paths:
        raise BadReference(f"The voice has no recordings to learn from ({folder.name}).")
    return [decode_audio(p.read_bytes()).samples for p in paths]


def next_artifact(folder: Path) -> Path:
    versions = [int(p.stem.split("-v")[-1]) for p in folder.glob("lite-v*.pt") if p.stem.split("-v")[-1].isdigit()]
    return folder / f"lite-v{max(versions, default=0) + 1}.pt"


async def train_voice(ctx: JobContext) -> str:
    import torch

    from RVC.features import bundled_content
    from RVC.lite_base import load_base
    from RVC.lite_model import LiteConfig
    from RVC.lite_recipe import fine_tune, recipe_for, training_set
    from RVC.lite_train import export
    from RVC.reference import check_reference, limits_for
    from core.types import Audio

    folder = Path(ctx.params["dir"])
    work = Path(ctx.work_dir)
    name = ctx.job.target
    profile = _profile(ctx)
    gpu = torch.cuda.is_available()
    # every full voice starts from the shipped base (RVC/lite_base.py): on two CPU cores the budget buys a few
    # hundred steps, enough to move a speaking network's timbre, far too few to teach a blank one to speak
    base = None if profile == "tiny" else load_base()
    # the recipe (RVC/lite_recipe.py) is what bench/new_speakers.py measures: budget, batch, losses, frozen parts
    recipe = recipe_for("cuda" if gpu else "cpu", ctx.params.get("recipe"))
    cfg = LiteConfig.tiny() if profile == "tiny" else (recipe.config(base) if base else LiteConfig())
    limits = limits_for(profile, ctx.params.get("min_seconds"))
    max_steps = ctx.job.max_steps or (20 if profile == "tiny" else recipe.max_steps)
    max_seconds = float(ctx.params.get("max_seconds", 20 if profile == "tiny" else recipe.max_seconds))
    checkpoint_steps = int(ctx.params.get("checkpoint_steps", CHECKPOINT_STEPS))
    checkpoint_seconds = float(ctx.params.get("checkpoint_seconds", CHECKPOINT_SECONDS))
    loop = asyncio.get_running_loop()

    dataset_path = work / "dataset.npz"
    if dataset_path.exists():
        data = await asyncio.to_thread(lambda: dict(np.load(dataset_path, allow_pickle=False)))
    else:
        await ctx.report(step=0, progress=0.0, log_line="checking the recordings")
        clips = await asyncio.to_thread(_clips, folder)
        await asyncio.to_thread(check_reference, [Audio(c, 16000) for c in clips], limits)
        await ctx.report(step=0, progress=0.01, log_line=f"{len(clips)} recording(s) checked; computing features")
        cache = Path(ctx.params.get("cache_dir") or folder.parents[1] / "cache")
        content = bundled_content(cache)

        def features_done(done: int, total: int) -> None:
            ctx.check()  # between clips: a cancel during feature extraction lands here
            asyncio.run_coroutine_threadsafe(
                ctx.report(step=0, progress=0.01 + 0.04 * done / total, log_line=f"features: clip {done}/{total}"),
                loop).result()

        data = await asyncio.to_thread(training_set, clips, base, content, cfg.content_dims, features_done)
        tmp = work / "dataset.tmp.npz"
        await asyncio.to_thread(lambda: np.savez(tmp, **data))
        tmp.replace(dataset_path)  # a run killed while saving leaves no half-written set to resume from

    resume = None
    if ctx.checkpoint and Path(ctx.checkpoint).is_file():
        resume = await asyncio.to_thread(torch.load, ctx.checkpoint, map_location="cpu", weights_only=True)
    first_step = int(resume["step"]) if resume else 0
    checkpoint_path = work / "checkpoint.pt"
    clock = {"saved": time.monotonic(), "reported": 0.0}

    def progress(step: int, total: int, elapsed: float, losses: dict) -> None:
        """Called after every step in the training thread: a cancel stops it there, checkpoints go by steps and by time."""
        ctx.check()
        now = time.monotonic()
        checkpoint = None
        if step % checkpoint_steps == 0 or now - clock["saved"] >= checkpoint_seconds:
            torch.save(current["state_fn"](step), str(checkpoint_path) + ".tmp")
            os.replace(str(checkpoint_path) + ".tmp", checkpoint_path)
            checkpoint, clock["saved"] = str(checkpoint_path), now
        if checkpoint is None and step != first_step + 1 and now - clock["reported"] < REPORT_SECONDS:
            return
        clock["reported"] = now
        line = f"step {step}/{total}: " + " ".join(f"{k} {v:.3f}" for k, v in losses.items())
        fraction = min(1.0, max(step / total, elapsed / max_seconds))
        asyncio.run_coroutine_threadsafe(
            ctx.report(step=step, progress=0.05 + 0.9 * fraction, checkpoint=checkpoint, log_line=line), loop).result()

    current: dict = {}
    t0 = time.perf_counter()
    if resume:
        await ctx.report(step=first_step, progress=0.05 + 0.9 * first_step / max_steps,
                         log_line=f"resumed from the checkpoint at step {first_step}")

    def run():
        return fine_tune(data, base, recipe, cfg=cfg, max_steps=max_steps, max_seconds=max_seconds, progress=progress,
                         report_every=1, resume=resume, state_hook=current)

    net, state = await asyncio.to_thread(run)
    artifact = export(net, data, next_artifact(folder), steps=state["step"], seconds=time.perf_counter() - t0)
    from RVC.quality_gate import CPU_LIMITS, gate_trained_voice

    # below its limits the job fails here and the version already serving (if any) goes on serving; a voice
    # fine-tuned from the base on a CPU is held to the CPU goal
    gate_limits = CPU_LIMITS if base is not None and not gpu else None
    quality = await gate_trained_voice(ctx, artifact, state["step"], gate_limits) if ctx.params.get("quality_gate", True) else None
    from storage.voices import VoiceRepository

    # only now does the new version serve; until here (and after a failure or a cancel) the previous one did
    voices = VoiceRepository(cast("async_sessionmaker[AsyncSession]", ctx.sessions))
    version = await voices.add_version(name, str(artifact), {"steps": state["step"], "job": ctx.job.id},
                                       number=int(artifact.stem.split("-v")[-1]))
    await ctx.report(step=state["step"], progress=1.0, log_line=f"saved {artifact.name}")
    return f"voice '{name}' is ready: v{version} ({artifact.name}, {state['step']} steps; {quality.summary() if quality else 'quality not checked'})"
