"""The avatar training job, run by the worker (bot/worker.py): video → trained avatar, resumable from checkpoints.

Stages report progress as one 0..1 scale: reading the video and tracking the face take the first 10 %,
training the rest. A checkpoint is written every few hundred steps; a restarted job picks up there.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

from core.jobs import JobContext
from geneface.lite.model import TINY, LiteConfig

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

CONFIGS = {"tiny": TINY, "full": LiteConfig()}
# the full configuration passed the lip-sync goal after 250 steps on a 3-minute video (bench/results/avatar.txt)
DEFAULT_STEPS = {"tiny": 400, "full": 2000}
PREPARE_SHARE = 0.1
CHECKPOINT_SECONDS = 30.0  # a run killed between step checkpoints loses at most this much
REPORT_SECONDS = 1.0  # progress reaches the database at most this often


async def train_avatar(ctx: JobContext) -> str:
    name = ctx.job.target
    engine = ctx.job.engine or "lite"
    if engine == "geneface":
        from geneface.docker_engine import train_in_docker

        return await train_in_docker(ctx)
    if engine != "lite":
        raise ValueError(f"unknown avatar engine {engine!r}")
    return await _train_lite(ctx, name)


async def _train_lite(ctx: JobContext, name: str) -> str:
    from geneface.intake import IntakeRules, load_footage
    from geneface.lite import artifact
    from geneface.lite.data import Prepared, prepare
    from geneface.lite.train import Trainer

    config_name = ctx.params.get("config", "full")
    config = CONFIGS[config_name]
    steps = ctx.job.max_steps or DEFAULT_STEPS[config_name]
    work = Path(ctx.work_dir)
    # a folder per job: the version serving now is never written over while this one trains
    out_dir = Path(ctx.params.get("dir") or work) / f"lite-job{ctx.job.id}"
    rules = IntakeRules(min_seconds=float(ctx.params.get("min_seconds", IntakeRules.min_seconds)))
    checkpoint_seconds = float(ctx.params.get("checkpoint_seconds", CHECKPOINT_SECONDS))

    await ctx.report(step=0, progress=0.0, log_line="reading the video and tracking the face")
    data = await asyncio.to_thread(Path(ctx.params["source"]).read_bytes)
    # every decoded frame checks for a cancel, so face tracking and cropping stop within a frame of one
    footage = await asyncio.to_thread(load_footage, data, 512, rules, 8.0, ctx.check)
    cached = work / "prepared.npz"
    if cached.exists():
        prepared = await asyncio.to_thread(Prepared.load, cached)
    else:
        prepared = await asyncio.to_thread(prepare, footage, config.size, None, ctx.check)
        await asyncio.to_thread(prepared.save, cached)
    await ctx.report(step=0, progress=PREPARE_SHARE,
                     log_line=f"{len(prepared.crops)} frames ({footage.seconds:.0f} s) ready; training {steps} steps")

    batch = int(ctx.params.get("batch") or (64 if ctx.job.gpu is not None else 16))
    trainer = Trainer(prepared, config, gpu=ctx.job.gpu, batch=batch)
    if ctx.checkpoint and Path(ctx.checkpoint).exists():
        await asyncio.to_thread(trainer.load, ctx.checkpoint)
        await ctx.report(step=trainer.step, progress=_progress(trainer.step, steps),
                         log_line=f"resumed from the checkpoint at step {trainer.step}")
    loop = asyncio.get_running_loop()
    started, first_step = time.monotonic(), trainer.step
    checkpoint_path = work / "checkpoint.pt"
    clock = {"saved": started, "reported": 0.0}

    def on_progress(step: int, loss: float, saved: str | None) -> None:
        """Called after every step in the training thread: cancel checked each step, a checkpoint by time too."""
        ctx.check()
        now = time.monotonic()
        if saved is None and now - clock["saved"] >= checkpoint_seconds:
            saved = trainer.save(checkpoint_path)
        if saved is not None:
            clock["saved"] = now
        elif step != first_step + 1 and now - clock["reported"] < REPORT_SECONDS:
            return
        clock["reported"] = now
        done = step - first_step
        eta = (now - started) / done * (steps - step) if done else None
        # runs in the training thread: the report (and a cancel, raised from it) goes through the loop
        asyncio.run_coroutine_threadsafe(
            ctx.report(step=step, progress=_progress(step, steps), eta_seconds=eta, checkpoint=saved,
                       log_line=f"step {step}/{steps} loss {loss:.4f}"), loop).result()

    await asyncio.to_thread(trainer.run, steps, checkpoint=checkpoint_path,
                            checkpoint_every=int(ctx.params.get("checkpoint_every", 200)), report_every=1,
                            on_progress=on_progress)
    await asyncio.to_thread(artifact.save, out_dir, trainer.model, footage.idle, prepared)
    from storage.avatars import AvatarRepository

    # only now does the new version draw; until here (and after a failure or a cancel) the previous one did
    avatars = AvatarRepository(cast("async_sessionmaker[AsyncSession]", ctx.sessions))
    version = await avatars.add_version(name, str(out_dir), {"steps": steps, "config": config_name, "job": ctx.job.id},
                                        engine="lite")
    return f"avatar '{name}' is ready: v{version} ({steps} steps)"


def _progress(step: int, steps: int) -> float:
    return PREPARE_SHARE + (1 - PREPARE_SHARE) * step / max(steps, 1)
