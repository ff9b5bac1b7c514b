"""The GeneFace++ engine, run in its official environment (geneface/Dockerfile) through the Docker SDK.

A training job is three stages in one container image: preprocessing (the steps of the project's
data_gen/runs/nerf/run.sh: audio features, segmentation, landmarks, 3DMM fit, binarize), the head NeRF and
the torso NeRF. Each stage is one container, run as the host user with the assets mounted read-only
(geneface/assets.py); its log is read line by line for progress (tqdm's "12345step [...]"), saved
checkpoints and errors, kept whole in logs/STAGE.log beside the avatar, and written to the job at most every
REPORT_INTERVAL seconds. GeneFace's trainer resumes from the newest checkpoint in its work folder by itself,
and finished stages leave a marker, so a restarted job starts where it stopped. Replies are rendered by
the long-lived render containers of geneface/render_worker.py.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shlex
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

if TYPE_CHECKING:
    from geneface.render_worker import RenderPool

ROOT = "/opt/GeneFacePlusPlus"
SIDE, FPS = 512, 25
# the project's example configs: 250k updates for head and torso
HEAD_STEPS = 250_000
TORSO_STEPS = 250_000
# egs/datasets/May/lm3d_radnerf_sr.yaml (lpips_start_iters) and egs_bases/radnerf/base.yaml
# (finetune_lips_start_iter): the LPIPS and lip fine-tuning phases begin here; fewer steps skip them
FINETUNE_FROM = 200_000
# how much of the whole job each stage is, by their usual run times on one GPU
SHARES = {"preprocess": 0.15, "head": 0.45, "torso": 0.40}
# writes to the job row: at most one every this many seconds (tqdm redraws many times a second)
REPORT_INTERVAL = 2.0


def video_id(avatar: str) -> str:
    """GeneFace++ names files and configs after the video id, and its scripts `pkill -f` patterns that a name
    could match ("void*" is the regex voi+d*, so any "voi" kills run.sh itself) or break (regex characters).
    Keep to [A-Za-z0-9_], never "voi"; a short hash keeps altered names apart."""
    safe = re.sub(r"[^A-Za-z0-9_]", "_", avatar).replace("voi", "vo_i")
    if safe != avatar:
        safe += "_" + hashlib.sha1(avatar.encode()).hexdigest()[:6]
    return "doppel_" + safe


@dataclass(frozen=True)
class Stage:
    name: str
    command: list[str]
    max_steps: int  # 0: counted by the "doppel-step N/M" lines of the preprocessing script instead

    @property
    def marker(self) -> str:
        return f"stage-{self.name}.done"


# preprocessing as GeneFace++'s data_gen/runs/nerf/run.sh does it, one step at a time, but stopping at the first
# failure: its scripts print some errors and carry on, so each step must also leave the file the next one reads.
# run.sh's first step (resize to 512 px at 25 fps) is done by prepare_input, and its `pkill -f void*` (for stray
# GPU holders of the authors' cluster) is left out: a fresh container has none.
def preprocess_steps(vid: str) -> list[tuple[str, str, str]]:
    """(name, command, the file it must leave) for each step."""
    raw, out = f"data/raw/videos/{vid}.mp4", f"data/processed/videos/{vid}"
    common = f"--ds_name=nerf --vid_dir={raw}"
    return [
        ("audio", f"ffmpeg -nostdin -loglevel error -y -i {raw} -f wav -ar 16000 {out}/aud.wav", f"{out}/aud.wav"),
        ("hubert", f"python data_gen/utils/process_audio/extract_hubert.py --video_id={vid}", f"{out}/aud_hubert.npy"),
        ("mel_f0", f"python data_gen/utils/process_audio/extract_mel_f0.py --video_id={vid}", f"{out}/aud_mel_f0.npy"),
        ("frames", f"ffmpeg -nostdin -loglevel error -y -i {raw} -vf fps=25,scale=w=512:h=512 -qmin 1 -q:v 1 "
                   f"-start_number 0 {out}/gt_imgs/%08d.jpg", f"{out}/gt_imgs/00000000.jpg"),
        ("segment", f"python data_gen/utils/process_video/extract_segment_imgs.py {common}", f"{out}/bg.jpg"),
        ("landmarks", f"python data_gen/utils/process_video/extract_lm2d.py {common}", f"{out}/lms_2d.npy"),
        ("3dmm", f"python data_gen/utils/process_video/fit_3dmm_landmark.py {common} --reset --debug --id_mode=global",
         f"{out}/coeff_fit_mp.npy"),
        ("binarize", f"python data_gen/runs/binarizer_nerf.py --video_id={vid}", f"data/binary/videos/{vid}/trainval_dataset.npy"),
    ]


def _script(lines: list[str]) -> list[str]:
    # fail fast: any failing command, unset variable or failing pipe stage ends the container with its code
    return ["bash", "-c", "\n".join(["set -euo pipefail", *lines])]


def stages(vid: str, head_steps: int = HEAD_STEPS, torso_steps: int = TORSO_STEPS) -> list[Stage]:
    head_dir = f"checkpoints/motion2video_nerf/{vid}_head"
    configs = f"egs/datasets/{vid}"
    # a config folder per video, copied from the project's "May" example with its video id changed
    make_config = (f"rm -rf {configs} && cp -r egs/datasets/May {configs} && "
                   f"sed -i 's/^video_id: .*/video_id: {vid}/' {configs}/*.yaml")
    steps = preprocess_steps(vid)
    pre = [make_config, f"mkdir -p data/processed/videos/{vid}/gt_imgs"]
    for i, (name, command, output) in enumerate(steps, 1):
        pre += [f"echo 'doppel-step {i}/{len(steps)}: {name}'", command,
                f"test -s {output} || {{ echo 'doppel-missing: {name} left no {output}'; exit 3; }}"]
    return [
        Stage("preprocess", _script(pre), 0),
        Stage("head", _script([make_config, f"python tasks/run.py --config={configs}/lm3d_radnerf_sr.yaml "
                               f"--exp_name=motion2video_nerf/{vid}_head --reset --hparams=max_updates={head_steps}"]),
              head_steps),
        Stage("torso", _script([make_config, f"python tasks/run.py --config={configs}/lm3d_radnerf_torso_sr.yaml "
                                f"--exp_name=motion2video_nerf/{vid}_torso --reset "
                                f"--hparams=head_model_dir={head_dir},max_updates={torso_steps}"]), torso_steps),
    ]


@dataclass(frozen=True)
class Mounts:
    """Host folders bind-mounted into the container: one avatar's GeneFace tree plus the shared assets."""

    avatar_dir: Path  # holds data/ and nerf/ for this avatar
    assets_dir: Path  # see geneface/assets.py

    def volumes(self) -> dict[str, dict[str, str]]:
        from geneface import assets

        a = self.avatar_dir.resolve()
        return {
            str(a / "data"): {"bind": f"{ROOT}/data", "mode": "rw"},
            str(a / "nerf"): {"bind": f"{ROOT}/checkpoints/motion2video_nerf", "mode": "rw"},
            **assets.volumes(self.assets_dir),
        }


def container_user() -> str:
    """The host user, so what the container writes into mounted folders stays the host user's."""
    return f"{os.getuid()}:{os.getgid()}"


def container_env() -> dict[str, str]:
    from geneface import assets

    return {
        "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1",
        # inside, the one GPU passed in is always device 0
        "CUDA_VISIBLE_DEVICES": "0",
        # the host user has no home in the image: caches that must be writable go to /tmp
        "HOME": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib", "NUMBA_CACHE_DIR": "/tmp/numba",
        "TORCH_EXTENSIONS_DIR": "/tmp/torch_extensions",
        **assets.environment(),
    }


def run_kwargs(image: str, command: list[str], mounts: Mounts, gpu: int, name: str) -> dict:
    """The arguments for docker's `containers.run`, one GPU passed through by index."""
    import docker.types

    return {
        "image": image, "command": command, "detach": True, "name": name, "working_dir": ROOT,
        "volumes": mounts.volumes(), "shm_size": "8g", "user": container_user(), "environment": container_env(),
        "device_requests": [docker.types.DeviceRequest(device_ids=[str(gpu)], capabilities=[["gpu"]])],
    }


# ---- log parsing ----

_TQDM_STEP = re.compile(r"(?:^|\s)(\d+)(?:/\S+)?\s*step\s*\[(\d+:\d+(?::\d+)?)(?:<[^,]*)?,\s*([\d.]+)(step/s|s/step)")
_SAVED = re.compile(r"saving model to (\S*model_ckpt_steps_(\d+)\.ckpt)")
_STEP_OF = re.compile(r"^doppel-step (\d+)/(\d+): (\S+)")
_END = re.compile(r"^\| Training end")
_ERROR = re.compile(r"(Traceback \(most recent call last\)|CUDA out of memory|RuntimeError:|Error:|No such file|^doppel-missing:)")


@dataclass
class LogEvent:
    kind: str  # "step" | "checkpoint" | "part" | "end" | "error" | "line"
    text: str
    step: int = 0
    rate: float | None = None  # steps per second
    path: str = ""


def split_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Docker's log stream in lines; tqdm redraws with carriage returns, each redraw counts as a line."""
    buf = ""
    for chunk in chunks:
        buf += chunk.decode("utf-8", "replace")
        parts = re.split(r"[\r\n]", buf)
        buf = parts.pop()
        for p in parts:
            if p.strip():
                yield p.strip()
    if buf.strip():
        yield buf.strip()


def parse_line(line: str) -> LogEvent:
    if m := _SAVED.search(line):
        return LogEvent("checkpoint", line, step=int(m.group(2)), path=m.group(1))
    if m := _TQDM_STEP.search(line):
        value = float(m.group(3))
        rate = value if m.group(4) == "step/s" else (1.0 / value if value else None)
        return LogEvent("step", line, step=int(m.group(1)), rate=rate)
    if _END.search(line):
        return LogEvent("end", line)
    if m := _STEP_OF.search(line):
        return LogEvent("part", line, step=int(m.group(1)), path=m.group(3))
    if _ERROR.search(line):
        return LogEvent("error", line)
    return LogEvent("line", line)


@dataclass
class StageProgress:
    """Turns a stage's log events into (step, overall progress, eta) and remembers how the stage went."""

    stage: Stage
    offset: float  # overall progress when this stage started
    share: float
    step: int = 0
    parts: int = 1  # preprocessing: how many steps its script announced
    part: str = ""  # preprocessing: the step running now
    rate: float | None = None
    ended: bool = False
    errors: list[str] = field(default_factory=list)
    tail: deque = field(default_factory=lambda: deque(maxlen=40))  # the last lines other than progress bars

    def update(self, event: LogEvent) -> tuple[int, float, float | None] | None:
        if event.kind != "step":
            self.tail.append(event.text)
        if event.kind == "step" and self.stage.max_steps:
            self.step, self.rate = event.step, event.rate or self.rate
        elif event.kind == "checkpoint":
            self.step = max(self.step, event.step)
        elif event.kind == "part" and not self.stage.max_steps:
            # a step's announcement: the ones before it are done
            found = _STEP_OF.search(event.text)
            assert found is not None  # a "part" event is a line this pattern matched
            self.parts = int(found.group(2))
            self.step, self.part = event.step - 1, event.path
        elif event.kind == "end":
            self.ended = True
            return None
        elif event.kind == "error":
            self.errors.append(event.text)
            return None
        else:
            return None
        total = self.stage.max_steps or self.parts
        fraction = min(1.0, self.step / total)
        eta = (total - self.step) / self.rate if self.rate and self.stage.max_steps else None
        return self.step, self.offset + self.share * fraction, eta

    def failure(self, code: int) -> str | None:
        """Why the stage failed, or None when it did not."""
        where = f" at step '{self.part}'" if self.part else ""
        if code != 0:
            cause = self.errors[-1] if self.errors else f"exit code {code}"
            return f"GeneFace++ {self.stage.name} failed{where}: {cause}"
        if self.stage.max_steps and not self.ended:
            return f"GeneFace++ {self.stage.name} stopped without '| Training end'"
        return None


class ProgressWriter:
    """One stage's progress and log lines, written to the job at most every `interval` seconds.

    Called from the thread that reads the container's log; a write goes through the event loop, and a
    cancel raised by it (JobCancelled) comes back into that thread, which then stops the container.
    """

    def __init__(self, ctx, loop: asyncio.AbstractEventLoop, stage: str, *, interval: float = REPORT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx, self.loop, self.stage, self.interval, self.clock = ctx, loop, stage, interval, clock
        self.step, self.progress = 0, 0.0
        self.eta: float | None = None
        self.lines: list[str] = []
        self.checkpoint: str | None = None
        self.dirty = False
        self.last = clock()

    def note(self, *, update: tuple[int, float, float | None] | None = None, line: str | None = None,
             checkpoint: str | None = None, urgent: bool = False) -> None:
        if update is not None:
            self.step, self.progress, self.eta = update
            self.dirty = True
        if line:
            self.lines.append(f"{self.stage}: {line}"[:300])
            self.dirty = True
        if checkpoint:
            self.checkpoint, self.dirty = checkpoint, True
        if urgent or checkpoint or self.clock() - self.last >= self.interval:
            self.flush()

    def flush(self) -> None:
        if not self.dirty:
            return
        lines, self.lines = self.lines[-20:], []
        checkpoint, self.checkpoint = self.checkpoint, None
        self.dirty, self.last = False, self.clock()
        asyncio.run_coroutine_threadsafe(
            self.ctx.report(step=self.step, progress=self.progress, eta_seconds=self.eta, checkpoint=checkpoint,
                            log_line="\n".join(lines) or None), self.loop).result()


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
        data = Path(ctx.params["source"]).read_bytes()
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
        (avatar_dir / stage.marker).write_text("ok\n")
        offset += share
    version = None
    if ctx.sessions is not None:
        from storage.avatars import AvatarRepository

        version = await AvatarRepository(ctx.sessions).add_version(name, str(avatar_dir), {"video_id": vid, "steps": steps,
                                                                                            "job": ctx.job.id}, engine="geneface")
    return f"avatar '{name}' is ready{f': v{version}' if version else ''} (GeneFace++, {steps} steps per stage)"
