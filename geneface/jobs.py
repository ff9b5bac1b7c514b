"""The avatar training job, run by the worker (bot/worker.py): video → trained avatar, resumable from checkpoints.

Stages report progress as one 0..1 scale: reading the video and tracking the face take the first 10 %,
training the rest. A checkpoint is written every few hundred steps; a restarted job picks up there.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

from core.jobs import JobContext
from geneface.lite.model import TINY, LiteConfig

CONFIGS = {"tiny": TINY, "full": LiteConfig()}
# the full configuration passed the lip-sync goal after 250 steps on a 3-minute video (bench/results/avatar.txt)
DEFAULT_STEPS = {"tiny": 400, "full": 2000}
PREPARE_SHARE = 0.1


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
    out_dir = Path(ctx.params.get("dir") or work) / "lite"
    rules = IntakeRules(min_seconds=float(ctx.params.get("min_seconds", IntakeRules.min_seconds)))

    await ctx.report(step=0, progress=0.0, log_line="reading the video and tracking the face")
    data = Path(ctx.params["source"]).read_bytes()
    footage = await asyncio.to_thread(load_footage, data, 512, rules)
    cached = work / "prepared.npz"
    if cached.exists():
        prepared = Prepared.load(cached)
    else:
        prepared = await asyncio.to_thread(prepare, footage, config.size)
        prepared.save(cached)
    await ctx.report(step=0, progress=PREPARE_SHARE,
                     log_line=f"{len(prepared.crops)} frames ({footage.seconds:.0f} s) ready; training {steps} steps")

    batch = int(ctx.params.get("batch") or (64 if ctx.job.gpu is not None else 16))
    trainer = Trainer(prepared, config, gpu=ctx.job.gpu, batch=batch)
    if ctx.checkpoint and Path(ctx.checkpoint).exists():
        trainer.load(ctx.checkpoint)
        await ctx.report(step=trainer.step, progress=_progress(trainer.step, steps),
                         log_line=f"resumed from the checkpoint at step {trainer.step}")
    loop = asyncio.get_running_loop()
    started, first_step = time.monotonic(), trainer.step

    def on_progress(step: int, loss: float, saved: str | None) -> None:
        done = step - first_step
        eta = (time.monotonic() - started) / done * (steps - step) if done else None
        # runs in the training thread: the report (and a cancel, raised from it) goes through the loop
        asyncio.run_coroutine_threadsafe(
            ctx.report(step=step, progress=_progress(step, steps), eta_seconds=eta, checkpoint=saved,
                       log_line=f"step {step}/{steps} loss {loss:.4f}"), loop).result()

    await asyncio.to_thread(trainer.run, steps, checkpoint=work / "checkpoint.pt",
                            checkpoint_every=int(ctx.params.get("checkpoint_every", 200)), on_progress=on_progress)
    await asyncio.to_thread(artifact.save, out_dir, trainer.model, footage.idle, prepared)
    sessions = getattr(ctx, "sessions", None)
    if sessions is not None:
        from storage.avatars import AvatarRepository

        await AvatarRepository(sessions).set_ready(name, str(out_dir), {"steps": steps, "config": config_name})
    return f"avatar '{name}' is ready ({steps} steps)"


def _progress(step: int, steps: int) -> float:
    return PREPARE_SHARE + (1 - PREPARE_SHARE) * step / max(steps, 1)
