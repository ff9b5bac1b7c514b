"""The GeneFace++ engine, run in its official environment (geneface/Dockerfile) through the Docker SDK.

A training job is three stages in one container image: preprocessing (the project's data_gen/runs/nerf/run.sh:
audio features, segmentation, landmarks, 3DMM fit, binarize), the head NeRF and the torso NeRF. Each
stage is one container; its log is read line by line for progress (tqdm's "12345step [...]"), saved
checkpoints and errors. GeneFace's trainer resumes from the newest checkpoint in its work folder by
itself, and finished stages leave a marker, so a restarted job starts where it stopped.
"""
from __future__ import annotations

import asyncio
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

ROOT = "/opt/GeneFacePlusPlus"
SIDE, FPS = 512, 25
# the project's example configs: 250k updates for head and torso
HEAD_STEPS = 250_000
TORSO_STEPS = 250_000
# how much of the whole job each stage is, by their usual run times on one GPU
SHARES = {"preprocess": 0.15, "head": 0.45, "torso": 0.40}
PREPROCESS_STEPS = 9  # run.sh prints "Done" after each of its 9 steps


def video_id(avatar: str) -> str:
    """GeneFace++ names files and configs after the video id; keep it to safe characters."""
    return "doppel_" + re.sub(r"[^A-Za-z0-9_]", "_", avatar)


@dataclass(frozen=True)
class Stage:
    name: str
    command: list[str]
    max_steps: int  # 0: counted by the "Done" lines of run.sh instead

    @property
    def marker(self) -> str:
        return f"stage-{self.name}.done"


def stages(vid: str, head_steps: int = HEAD_STEPS, torso_steps: int = TORSO_STEPS) -> list[Stage]:
    head_dir = f"checkpoints/motion2video_nerf/{vid}_head"
    configs = f"egs/datasets/{vid}"
    # a config folder per video, copied from the project's "May" example with its video id changed
    make_config = (f"rm -rf {configs} && cp -r egs/datasets/May {configs} && "
                   f"sed -i 's/^video_id: .*/video_id: {vid}/' {configs}/*.yaml")
    return [
        Stage("preprocess", ["bash", "-lc", f"{make_config} && bash data_gen/runs/nerf/run.sh {vid}"], 0),
        Stage("head", ["bash", "-lc", f"{make_config} && python tasks/run.py --config={configs}/lm3d_radnerf_sr.yaml "
                       f"--exp_name=motion2video_nerf/{vid}_head --reset --hparams=max_updates={head_steps}"], head_steps),
        Stage("torso", ["bash", "-lc", f"{make_config} && python tasks/run.py --config={configs}/lm3d_radnerf_torso_sr.yaml "
                        f"--exp_name=motion2video_nerf/{vid}_torso --reset "
                        f"--hparams=head_model_dir={head_dir},max_updates={torso_steps}"], torso_steps),
    ]


def infer_command(vid: str, wav: str, out: str) -> list[str]:
    return ["python", "inference/genefacepp_infer.py", "--a2m_ckpt=checkpoints/audio2motion_vae", "--head_ckpt=",
            f"--torso_ckpt=checkpoints/motion2video_nerf/{vid}_torso", f"--drv_aud={wav}", f"--out_name={out}"]


@dataclass(frozen=True)
class Mounts:
    """Host folders bind-mounted into the container: one avatar's GeneFace tree plus the shared assets."""

    avatar_dir: Path  # holds data/ and nerf/ for this avatar
    assets_dir: Path  # holds BFM/ and audio2motion_vae/ (downloaded by hand, see the Dockerfile)

    def volumes(self) -> dict[str, dict[str, str]]:
        a, s = self.avatar_dir.resolve(), self.assets_dir.resolve()
        return {
            str(a / "data"): {"bind": f"{ROOT}/data", "mode": "rw"},
            str(a / "nerf"): {"bind": f"{ROOT}/checkpoints/motion2video_nerf", "mode": "rw"},
            str(a / "io"): {"bind": "/io", "mode": "rw"},
            str(s / "BFM"): {"bind": f"{ROOT}/deep_3drecon/BFM", "mode": "ro"},
            str(s / "audio2motion_vae"): {"bind": f"{ROOT}/checkpoints/audio2motion_vae", "mode": "ro"},
        }


def run_kwargs(image: str, command: list[str], mounts: Mounts, gpu: int | None, name: str) -> dict:
    """The arguments for docker's `containers.run`, one GPU passed through by index."""
    import docker.types

    kwargs = {
        "image": image, "command": command, "detach": True, "name": name, "working_dir": ROOT,
        "volumes": mounts.volumes(), "shm_size": "8g",
        # inside, the one GPU passed in is always device 0
        "environment": {"PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": "0"},
    }
    kwargs["device_requests"] = [docker.types.DeviceRequest(device_ids=[str(gpu if gpu is not None else 0)],
                                                            capabilities=[["gpu"]])]
    return kwargs


# ---- log parsing ----

_TQDM_STEP = re.compile(r"(?:^|\s)(\d+)(?:/\S+)?\s*step\s*\[(\d+:\d+(?::\d+)?)(?:<[^,]*)?,\s*([\d.]+)(step/s|s/step)")
_SAVED = re.compile(r"saving model to (\S*model_ckpt_steps_(\d+)\.ckpt)")
_DONE = re.compile(r"^Done\s*$")
_END = re.compile(r"^\| Training end")
_ERROR = re.compile(r"(Traceback \(most recent call last\)|CUDA out of memory|RuntimeError:|Error:|No such file)")


@dataclass
class LogEvent:
    kind: str  # "step" | "checkpoint" | "done" | "end" | "error" | "line"
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
    if _DONE.search(line):
        return LogEvent("done", line)
    if _ERROR.search(line):
        return LogEvent("error", line)
    return LogEvent("line", line)


@dataclass
class StageProgress:
    """Turns a stage's log events into (step, overall progress, eta, checkpoint) reports."""

    stage: Stage
    offset: float  # overall progress when this stage started
    share: float
    done_lines: int = 0
    step: int = 0
    rate: float | None = None
    errors: list[str] = field(default_factory=list)

    def update(self, event: LogEvent) -> tuple[int, float, float | None] | None:
        if event.kind == "step" and self.stage.max_steps:
            self.step, self.rate = event.step, event.rate or self.rate
        elif event.kind == "checkpoint":
            self.step = max(self.step, event.step)
        elif event.kind == "done" and not self.stage.max_steps:
            self.done_lines += 1
            self.step = self.done_lines
        elif event.kind == "error":
            self.errors.append(event.text)
            return None
        else:
            return None
        total = self.stage.max_steps or PREPROCESS_STEPS
        fraction = min(1.0, self.step / total)
        eta = (total - self.step) / self.rate if self.rate and self.stage.max_steps else None
        return self.step, self.offset + self.share * fraction, eta


# ---- running ----


class GeneFaceDocker:
    """Runs GeneFace++ stages and inference in containers of `image`; the Docker client is made on first use."""

    def __init__(self, image: str, data_dir: Path, *, docker_url: str = "", assets_dir: Path | None = None,
                 client_factory: Callable[[], object] | None = None) -> None:
        self.image = image
        self.data_dir = Path(data_dir)
        self.assets_dir = Path(assets_dir) if assets_dir else self.data_dir / "geneface-assets"
        self.docker_url = docker_url
        self._factory = client_factory
        self._client = None
        self._running: dict[str, object] = {}  # container name → container, for stop_all()

    def client(self):
        if self._client is None:
            if self._factory is not None:
                self._client = self._factory()
            else:
                import docker

                self._client = docker.DockerClient(base_url=self.docker_url) if self.docker_url else docker.from_env()
        return self._client

    def mounts(self, avatar_dir: Path) -> Mounts:
        for sub in ("data/raw/videos", "nerf", "io"):
            (avatar_dir / sub).mkdir(parents=True, exist_ok=True)
        return Mounts(avatar_dir, self.assets_dir)

    def run_stage(self, stage: Stage, mounts: Mounts, gpu: int | None, name: str,
                  on_event: Callable[[LogEvent], None]) -> int:
        """Run one stage to its end, calling `on_event` per log line; returns the exit code. Blocking."""
        container = self.client().containers.run(**run_kwargs(self.image, stage.command, mounts, gpu, name))
        self._running[name] = container
        try:
            for line in split_lines(container.logs(stream=True, follow=True)):
                on_event(parse_line(line))
            return int(container.wait().get("StatusCode", 1))
        except BaseException:
            # cancelled (or our side failed): stop the container, keep what it saved for a resume
            container.stop(timeout=20)
            raise
        finally:
            self._running.pop(name, None)
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
        from adapters.media import encode_wav

        # the id it was trained under: a renamed avatar keeps its files
        vid = record.params.get("video_id") or video_id(record.name)
        avatar_dir = Path(record.artifact_path)
        mounts = self.mounts(avatar_dir)
        (avatar_dir / "io" / "answer.wav").write_bytes(encode_wav(audio))
        out = avatar_dir / "io" / "answer.mp4"
        out.unlink(missing_ok=True)
        stage = Stage("infer", infer_command(vid, "/io/answer.wav", "/io/answer.mp4"), 0)
        code = await asyncio.to_thread(self.run_stage, stage, mounts, 0, f"doppel-geneface-infer-{vid}", lambda e: None)
        if code != 0 or not out.exists():
            from core.errors import EngineError

            raise EngineError("The GeneFace++ renderer failed.", detail=f"exit {code}")
        return out.read_bytes()


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
            yield np.asarray(Image.fromarray(frame[y0:y0 + side, x0:x0 + side]).resize((SIDE, SIDE), Image.LANCZOS))

    out_path.write_bytes(encode_mp4(frames(), FPS, decode_audio(data), crf=16))


async def train_in_docker(ctx, engine: GeneFaceDocker | None = None) -> str:
    """The worker's handler body for engine "geneface". The image and Docker URL come with the job's parameters."""
    from geneface.intake import IntakeRules, load_footage

    if engine is None:
        if not ctx.params.get("image"):
            raise ValueError("the job does not say which GeneFace++ image to run")
        engine = GeneFaceDocker(ctx.params["image"], Path(ctx.params["data_dir"]), docker_url=ctx.params.get("docker_url", ""),
                                assets_dir=Path(ctx.params["assets_dir"]) if ctx.params.get("assets_dir") else None)
    # a cancel stops the running container at once instead of waiting for its next log line
    ctx.on_cancel(engine.stop_all)
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
    plan = stages(vid, head_steps=steps, torso_steps=steps)
    loop = asyncio.get_running_loop()
    offset = 0.0
    for stage in plan:
        share = SHARES[stage.name]
        if (avatar_dir / stage.marker).exists():
            offset += share
            continue
        progress = StageProgress(stage, offset, share)
        await ctx.report(step=0, progress=offset, log_line=f"GeneFace++ {stage.name}: " + shlex.join(stage.command))

        def on_event(event: LogEvent, progress=progress, stage=stage) -> None:
            update = progress.update(event)
            if update is None and event.kind != "error":
                return
            step, overall, eta = update or (progress.step, progress.offset, None)
            checkpoint = f"{stage.name}:{event.path}" if event.kind == "checkpoint" else None
            asyncio.run_coroutine_threadsafe(
                ctx.report(step=step, progress=overall, eta_seconds=eta, checkpoint=checkpoint,
                           log_line=f"{stage.name}: {event.text}"[:300]), loop).result()

        code = await asyncio.to_thread(engine.run_stage, stage, mounts, ctx.job.gpu, f"doppel-geneface-{stage.name}-{vid}", on_event)
        if code != 0:
            tail = progress.errors[-1] if progress.errors else f"exit code {code}"
            raise RuntimeError(f"GeneFace++ {stage.name} failed: {tail}")
        (avatar_dir / stage.marker).write_text("ok\n")
        offset += share
    version = None
    if ctx.sessions is not None:
        from storage.avatars import AvatarRepository

        version = await AvatarRepository(ctx.sessions).add_version(name, str(avatar_dir), {"video_id": vid, "steps": steps,
                                                                                            "job": ctx.job.id}, engine="geneface")
    return f"avatar '{name}' is ready{f': v{version}' if version else ''} (GeneFace++, {steps} steps per stage)"
