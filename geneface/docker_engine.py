"""The GeneFace++ engine, run in its official environment (geneface/Dockerfile) through the Docker SDK.

A training job is three stages in one container image: preprocessing (the steps of the project's
data_gen/runs/nerf/run.sh: audio features, segmentation, landmarks, 3DMM fit, binarize), the head NeRF and
the torso NeRF. Each stage is one container, run as the host user with the assets mounted read-only
(geneface/assets.py); its log is read line by line for progress (tqdm's "12345step [...]"), saved
checkpoints and errors (geneface/training_log.py), kept whole in logs/STAGE.log beside the avatar; the stages'
commands are in geneface/stages.py. GeneFace's trainer resumes from the newest checkpoint in its work folder by
itself, and finished stages leave a marker, so a restarted job starts where it stopped. Replies are rendered by
the long-lived render containers of geneface/render_worker.py.
"""
from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from geneface.container import ROOT, asset_volumes, container_env, container_user, video_id
from geneface.stages import FINETUNE_FROM, HEAD_STEPS, SHARES, Stage, stages
from geneface.training_log import LogEvent, ProgressWriter, StageProgress, parse_line, split_lines

if TYPE_CHECKING:
    from geneface.render_worker import RenderPool

SIDE, FPS = 512, 25


@dataclass(frozen=True)
class Mounts:
    """Host folders bind-mounted into the container: one avatar's GeneFace tree plus the shared assets."""

    avatar_dir: Path  # holds data/ and nerf/ for this avatar
    assets_dir: Path  # see geneface/assets.py

    def volumes(self) -> dict[str, dict[str, str]]:
        a = self.avatar_dir.resolve()
        return {
            str(a / "data"): {"bind": f"{ROOT}/data", "mode": "rw"},
            str(a / "nerf"): {"bind": f"{ROOT}/checkpoints/motion2video_nerf", "mode": "rw"},
            **asset_volumes(self.assets_dir),
        }


def run_kwargs(image: str, command: list[str], mounts: Mounts, gpu: int, name: str) -> dict:
    """The arguments for docker's `containers.run`, one GPU passed through by index."""
    import docker.types

    return {
        "image": image, "command": command, "detach": True, "name": name, "working_dir": ROOT,
        "volumes": mounts.volumes(), "shm_size": "8g", "user": container_user(), "environment": container_env(),
        "device_requests": [docker.types.DeviceRequest(device_ids=[str(gpu)], capabilities=[["gpu"]])],
    }


# ---- running ----


class GeneFaceDocker:
    """Runs GeneFace++ stages in containers of `image`; the Docker client is made on first use."""

    def __init__(self, image: str, data_dir: Path, *, docker_url: str = "", assets_dir: Path | None = None,
                 gpus: list[int] | None = None, render_port: int = 10400,
                 client_factory: Callable[[], object] | None = None) -> None:
        from geneface import assets

        self.image = image
        self.data_dir = Path(data_dir)
        self.assets_dir = assets.default_root(self.data_dir, assets_dir)
        self.docker_url = docker_url
        self.gpus = gpus or [0]  # a training job without its own GPU runs on the first; one render container each
        self.render_port = render_port  # the render container of gpus[i] listens on 127.0.0.1:render_port+i
        self._factory = client_factory
        self._client = None
        self._running: dict[str, Any] = {}  # container name → container, for stop_all()
        self._pool: RenderPool | None = None  # the render containers, made on the first reply

    def client(self):
        if self._client is None:
            if self._factory is not None:
                self._client = self._factory()
            else:
                import docker

                self._client = docker.DockerClient(base_url=self.docker_url) if self.docker_url else docker.from_env()
        return self._client

    def mounts(self, avatar_dir: Path) -> Mounts:
        for sub in ("data/raw/videos", "nerf", "logs"):
            (avatar_dir / sub).mkdir(parents=True, exist_ok=True)
        return Mounts(avatar_dir, self.assets_dir)

    def run_stage(self, stage: Stage, mounts: Mounts, gpu: int, name: str,
                  on_event: Callable[[LogEvent], None], log_file: Path | None = None) -> int:
        """Run one stage to its end, calling `on_event` per log line; returns the exit code. Blocking.

        Every line but the progress bars' redraws also goes to `log_file`, so the whole story of a failed
        stage stays on disk beside the avatar.
        """
        container = self.client().containers.run(**run_kwargs(self.image, stage.command, mounts, gpu, name))
        self._running[name] = container
        log = open(log_file, "a", encoding="utf-8") if log_file else None  # noqa: SIM115 - closed in the finally below
        try:
            for line in split_lines(container.logs(stream=True, follow=True)):
                event = parse_line(line)
                if log is not None and event.kind != "step":
                    log.write(line + "\n")
                    log.flush()
                on_event(event)
            return int(container.wait().get("StatusCode", 1))
        except BaseException:
            # cancelled (or our side failed): stop the container, keep what it saved for a resume
            container.stop(timeout=20)
            raise
        finally:
            self._running.pop(name, None)
            if log is not None:
                log.close()
            try:
                container.remove(force=True)
            except Exception:
                pass

    def stop_all(self, timeout: int = 2) -> None:
        """Stop the containers running now (a cancelled job): SIGTERM, then SIGKILL after `timeout` seconds.

        Called from another thread while `run_stage` is blocked reading the logs; the stream then ends.
        """
        for container in list(self._running.values()):
            try:
                container.stop(timeout=timeout)
            except Exception:
                pass

    async def render(self, record, audio) -> bytes:
        from geneface.render_worker import RenderPool

        if self._pool is None:
            self._pool = RenderPool.for_engine(self)
        return await self._pool.render(record, audio)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


def prepare_input(data: bytes, points, out_path: Path) -> None:
    """The upload as GeneFace++ wants it: 512×512, 25 fps, the face centred, sound kept."""
    import numpy as np

    from adapters.media import decode_audio
    from adapters.video import encode_mp4, read_frames

    known = np.array([p.mean(0) for p in points if p is not None])
    cx, cy = np.median(known, axis=0)
    span = np.median([np.ptp(p[:, 0]) for p in points if p is not None]) * 2.6

    def frames():
        from PIL import Image

        for frame in read_frames(data, fps=FPS):
            h, w = frame.shape[:2]
            side = int(min(span, h, w))
            x0 = int(np.clip(cx - side / 2, 0, w - side))
            y0 = int(np.clip(cy - side * 0.45, 0, h - side))
            yield np.asarray(Image.fromarray(frame[y0:y0 + side, x0:x0 + side]).resize((SIDE, SIDE), Image.Resampling.LANCZOS))

    out_path.write_bytes(encode_mp4(frames(), FPS, decode_audio(data), crf=16))


def engine_from_settings(settings) -> GeneFaceDocker:
    return GeneFaceDocker(settings.geneface_image, settings.data_dir, docker_url=settings.docker_url,
                          assets_dir=settings.geneface_assets_dir, gpus=settings.geneface_gpu_list,
                          render_port=settings.geneface_render_port)


async def train_in_docker(ctx, engine: GeneFaceDocker | None = None) -> str:
    """The worker's handler body for engine "geneface". The image, Docker URL, assets and GPUs come with the job's
    parameters: the worker reads no front-end settings."""
    from geneface import assets
    from geneface.intake import IntakeRules, load_footage

    if engine is None:
        if not ctx.params.get("image"):
            raise ValueError("the job does not say which GeneFace++ image to run")
        engine = GeneFaceDocker(ctx.params["image"], Path(ctx.params["data_dir"]), docker_url=ctx.params.get("docker_url", ""),
                                assets_dir=Path(ctx.params["assets_dir"]) if ctx.params.get("assets_dir") else None,
                                gpus=ctx.params.get("gpus") or None)
    # a cancel stops the running container at once instead of waiting for its next log line
    ctx.on_cancel(engine.stop_all)
    # before anything runs: a missing asset would otherwise fail hours in, or download on an offline host
    assets.check(engine.assets_dir)
    name = ctx.job.target
    vid = video_id(name)
    # a folder per job: the version serving now is never written over while this one trains
    avatar_dir = Path(ctx.params.get("dir") or ctx.work_dir) / f"geneface-job{ctx.job.id}"
    mounts = engine.mounts(avatar_dir)
    video = avatar_dir / "data" / "raw" / "videos" / f"{vid}.mp4"
    if not video.exists():
        await ctx.report(step=0, progress=0.0, log_line="cropping the video to 512×512 at 25 fps")
        data = await asyncio.to_thread(Path(ctx.params["source"]).read_bytes)
        rules = IntakeRules(min_seconds=float(ctx.params.get("min_seconds", IntakeRules.min_seconds)))
        footage = await asyncio.to_thread(load_footage, data, 1024, rules, 0.0, ctx.check)
        await asyncio.to_thread(prepare_input, data, footage.points, video)
    steps = ctx.job.max_steps or HEAD_STEPS
    if steps <= FINETUNE_FROM:
        await ctx.report(step=0, progress=0.0, log_line=f"{steps} steps per NeRF stage: the LPIPS and lip fine-tuning "
                                                        f"that start at step {FINETUNE_FROM} will not run")
    gpu = ctx.job.gpu if ctx.job.gpu is not None else engine.gpus[0]
    plan = stages(vid, head_steps=steps, torso_steps=steps)
    loop = asyncio.get_running_loop()
    offset = 0.0
    for stage in plan:
        share = SHARES[stage.name]
        if (avatar_dir / stage.marker).exists():
            offset += share
            continue
        progress = StageProgress(stage, offset, share)
        writer = ProgressWriter(ctx, loop, stage.name)
        await ctx.report(step=0, progress=offset, log_line=f"GeneFace++ {stage.name} on GPU {gpu}: "
                                                           + shlex.join(stage.command)[:240])

        def on_event(event: LogEvent, progress=progress, writer=writer, stage=stage) -> None:
            update = progress.update(event)
            checkpoint = f"{stage.name}:{event.path}" if event.kind == "checkpoint" else None
            writer.note(update=update, line=None if event.kind == "step" else event.text, checkpoint=checkpoint)

        code = await asyncio.to_thread(engine.run_stage, stage, mounts, gpu, f"doppel-geneface-{stage.name}-{vid}",
                                       on_event, avatar_dir / "logs" / f"{stage.name}.log")
        await asyncio.to_thread(writer.flush)
        failure = progress.failure(code)
        if failure:
            # the stage's last lines, not only the error line: the cause is often printed before it
            await ctx.report(step=progress.step, progress=offset, log_line="\n".join(
                [f"{stage.name}: {line}"[:300] for line in list(progress.tail)[-12:]]) or None)
            raise RuntimeError(f"{failure} (full log: {avatar_dir / 'logs' / (stage.name + '.log')})")
        await asyncio.to_thread((avatar_dir / stage.marker).write_text, "ok\n")
        offset += share
    version = None
    if ctx.sessions is not None:
        from storage.avatars import AvatarRepository

        version = await AvatarRepository(ctx.sessions).add_version(name, str(avatar_dir), {"video_id": vid, "steps": steps,
                                                                                            "job": ctx.job.id}, engine="geneface")
    return f"avatar '{name}' is ready{f': v{version}' if version else ''} (GeneFace++, {steps} steps per stage)"
