"""The GeneFace++ engine's commands, Docker requests and log parsing, against a Docker API server on 127.0.0.1.

There is no Docker engine here. The log lines in tests/data/geneface_head_train.log follow the formats
GeneFace++'s trainer prints (tqdm with unit "step", "saving model to ...model_ckpt_steps_N.ckpt",
"| Training end.."); they were written from its source, not captured from a GPU run.
"""
from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.jobs import JobCancelled
from core.types import Job, JobStatus
from geneface import assets
from geneface.container import video_id
from geneface.docker_engine import GeneFaceDocker, train_in_docker
from geneface.stages import FINETUNE_FROM, preprocess_steps, stages
from geneface.training_log import ProgressWriter, StageProgress, parse_line, split_lines
from tests.fake_docker import FakeDocker

LOG = (Path(__file__).parent / "data" / "geneface_head_train.log").read_text().splitlines()


def test_stage_commands_follow_the_geneface_guide():
    vid = video_id("anna")
    assert vid == "doppel_anna"
    pre, head, torso = stages(vid, head_steps=4000, torso_steps=3000)
    script = pre.command[-1]
    assert pre.command[:2] == ["bash", "-c"] and script.startswith("set -euo pipefail\n")
    assert "cp -r egs/datasets/May egs/datasets/doppel_anna" in script
    assert "s/^video_id: .*/video_id: doppel_anna/" in script
    # run.sh's steps in its order, each announced and each checked for the file the next one reads
    names = [name for name, _, _ in preprocess_steps(vid)]
    assert names == ["audio", "hubert", "mel_f0", "frames", "segment", "landmarks", "3dmm", "binarize"]
    positions = [script.index(f"doppel-step {i}/8: {name}") for i, name in enumerate(names, 1)]
    assert positions == sorted(positions)
    assert "python data_gen/utils/process_video/fit_3dmm_landmark.py --ds_name=nerf " \
           "--vid_dir=data/raw/videos/doppel_anna.mp4 --reset --debug --id_mode=global" in script
    assert "test -s data/processed/videos/doppel_anna/coeff_fit_mp.npy ||" in script
    assert "test -s data/binary/videos/doppel_anna/trainval_dataset.npy ||" in script
    assert "pkill" not in script
    assert "--config=egs/datasets/doppel_anna/lm3d_radnerf_sr.yaml" in head.command[-1]
    assert "--exp_name=motion2video_nerf/doppel_anna_head" in head.command[-1]
    assert "max_updates=4000" in head.command[-1] and head.max_steps == 4000
    assert "--config=egs/datasets/doppel_anna/lm3d_radnerf_torso_sr.yaml" in torso.command[-1]
    assert "head_model_dir=checkpoints/motion2video_nerf/doppel_anna_head,max_updates=3000" in torso.command[-1]


def test_names_cannot_match_or_break_the_scripts_pkill_patterns():
    # run.sh: `pkill -f void*` (regex: "voi" then any d's); tasks/run.py: "voidgpu{d}";
    # the trainer: "GeneFace_worker \\(checkpoints/motion2video_nerf/<vid>_head" as a regex
    names = ["voice", "Void", "avoid-it", "a.b*c(d", "анна", "anna-2", "anna_2", "vo_ice"]
    vids = [video_id(n) for n in names]
    assert len(set(vids)) == len(vids)
    for vid in vids:
        assert re.fullmatch(r"[A-Za-z0-9_]+", vid) and not re.search("void*", vid)
        for stage in stages(vid):
            assert not re.search("void*", " ".join(stage.command)), stage.name


def test_log_lines_give_steps_rates_checkpoints_and_the_end():
    events = [parse_line(line) for line in LOG]
    steps = [e for e in events if e.kind == "step"]
    # the sanity/valid bars count batches, not training steps: only the training bar's lines are steps
    assert [e.step for e in steps] == [1, 10, 250, 1999, 2750, 3999]
    assert steps[0].rate == pytest.approx(1 / 1.09, rel=1e-3) and steps[-1].rate == pytest.approx(12.60)
    saved = [e for e in events if e.kind == "checkpoint"]
    assert [(e.step, e.path) for e in saved] == [
        (2000, "checkpoints/motion2video_nerf/doppel_anna_head/model_ckpt_steps_2000.ckpt"),
        (4000, "checkpoints/motion2video_nerf/doppel_anna_head/model_ckpt_steps_4000.ckpt")]
    assert events[-1].kind == "end"
    assert parse_line("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB").kind == "error"
    assert parse_line("doppel-missing: 3dmm left no data/processed/videos/x/coeff_fit_mp.npy").kind == "error"
    part = parse_line("doppel-step 7/8: 3dmm")
    assert (part.kind, part.step, part.path) == ("part", 7, "3dmm")


def test_progress_of_a_stage_maps_into_the_whole_job():
    head = stages("v", head_steps=4000)[1]
    p = StageProgress(head, offset=0.15, share=0.45)
    step, overall, eta = p.update(parse_line("2000step [02:41, 12.50step/s, loss=0.0098]"))
    assert step == 2000 and overall == pytest.approx(0.15 + 0.45 * 0.5) and eta == pytest.approx(2000 / 12.5)
    pre = StageProgress(stages("v")[0], offset=0.0, share=0.15)
    for i in range(1, 5):
        update = pre.update(parse_line(f"doppel-step {i}/8: step{i}"))
    # step 4 announced: three are done
    assert update[0] == 3 and update[1] == pytest.approx(0.15 * 3 / 8) and pre.part == "step4"


def test_progress_is_written_at_most_every_interval_and_no_log_line_is_lost():
    class Job:
        def __init__(self) -> None:
            self.reports: list[dict] = []

        async def report(self, **kw) -> None:
            self.reports.append(kw)

    async def run() -> Job:
        job, now = Job(), [0.0]
        writer = ProgressWriter(job, asyncio.get_running_loop(), "head", interval=2.0, clock=lambda: now[0])

        def feed() -> None:  # the log-reading thread: 1000 tqdm redraws and 10 other lines over 10 s
            for i in range(1000):
                now[0] = i * 0.01
                writer.note(update=(i, i / 1000, None), line=f"line {i}" if i % 100 == 0 else None)
            writer.note(update=(1000, 1.0, None), checkpoint="head:model_ckpt_steps_1000.ckpt")
            writer.flush()

        await asyncio.to_thread(feed)
        return job

    job = asyncio.run(run())
    assert 5 <= len(job.reports) <= 7  # 10 s at one write per 2 s, plus the checkpoint
    assert job.reports[-1]["checkpoint"] == "head:model_ckpt_steps_1000.ckpt" and job.reports[-1]["progress"] == 1.0
    written = "\n".join(r["log_line"] for r in job.reports if r["log_line"]).splitlines()
    assert written == [f"head: line {i}" for i in range(0, 1000, 100)]


def test_carriage_return_redraws_are_split_into_lines():
    chunks = [b"1step [00:01, 1.0step/s]\r2st", b"ep [00:02, 1.0step/s]\r3step [00:03, 1.0step/s]\nDone\n"]
    assert [parse_line(x).step for x in split_lines(chunks)][:3] == [1, 2, 3]


@dataclass
class Ctx:
    job: Job
    params: dict
    checkpoint: str
    work_dir: str
    sessions: object = None
    cancel_at: int | None = None

    def __post_init__(self) -> None:
        self.reports: list[dict] = []
        self.hooks: list = []

    def check(self) -> None:
        pass

    def on_cancel(self, hook) -> None:
        self.hooks.append(hook)

    async def report(self, **kw) -> None:
        self.reports.append(kw)
        if self.cancel_at is not None and kw.get("step", 0) >= self.cancel_at:
            raise JobCancelled()


PRE_LOG = ["| Processing doppel_anna"] + [f"doppel-step {i}/8: {name}" for i, (name, _, _) in
                                         enumerate(preprocess_steps("doppel_anna"), 1)]


def _logs_for(body: dict) -> list[str]:
    return PRE_LOG if "doppel-step" in body["Cmd"][-1] else LOG


def make_assets(root: Path) -> Path:
    """Stand-ins for the assets: present and recorded, as `doppel geneface fetch-assets` leaves them."""
    sums = {}
    for asset in assets.DOWNLOADS:
        (root / asset.path).parent.mkdir(parents=True, exist_ok=True)
        (root / asset.path).write_bytes(asset.path.encode())
        sums[asset.path] = assets.sha256(root / asset.path)
    assets.write_sums(root, sums)
    for folder, names in assets.BY_HAND.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            (root / folder / name.replace("*", "400000")).write_bytes(b"x")
    return root


async def _run(tmp_path: Path, fake: FakeDocker, *, gpu: int | None = 1, gpus: list[int] | None = None,
               with_assets: bool = True, **ctx_kw) -> tuple[Ctx, str | BaseException]:
    avatar = tmp_path / "avatars" / "anna"
    video_dir = avatar / "geneface-job7" / "data" / "raw" / "videos"
    video_dir.mkdir(parents=True, exist_ok=True)
    # the 512×512 input is already made (by prepare_input); the stages are what is tested here
    (video_dir / "doppel_anna.mp4").write_bytes(b"\0")
    if with_assets:
        make_assets(tmp_path / "assets")
    engine = GeneFaceDocker("doppel/geneface:test", tmp_path, docker_url=fake.url, assets_dir=tmp_path / "assets", gpus=gpus)
    job = Job(id=7, kind="avatar", target="anna", status=JobStatus.RUNNING, engine="geneface", max_steps=4000, gpu=gpu)
    ctx = Ctx(job, {"dir": str(avatar), "source": str(tmp_path / "missing.mp4")}, "", str(tmp_path / "work"), **ctx_kw)
    try:
        result: str | BaseException = await train_in_docker(ctx, engine)
    except BaseException as exc:  # the test looks at what came out
        result = exc
    return ctx, result


async def test_training_runs_three_containers_as_the_host_user_with_the_gpu_mounts_and_offline_assets(tmp_path):
    with FakeDocker(_logs_for) as fake:
        ctx, result = await _run(tmp_path, fake)
    assert isinstance(result, str) and "ready" in result
    assert [c["_name"] for c in fake.created] == ["doppel-geneface-preprocess-doppel_anna", "doppel-geneface-head-doppel_anna",
                                                   "doppel-geneface-torso-doppel_anna"]
    head = fake.created[1]
    assert head["Image"] == "doppel/geneface:test" and head["WorkingDir"] == "/opt/GeneFacePlusPlus"
    assert head["User"] == f"{os.getuid()}:{os.getgid()}"
    requests = head["HostConfig"]["DeviceRequests"]
    assert requests[0]["DeviceIDs"] == ["1"] and requests[0]["Capabilities"] == [["gpu"]]
    binds = head["HostConfig"]["Binds"]
    assert any(b.endswith(":/opt/GeneFacePlusPlus/checkpoints/motion2video_nerf:rw") for b in binds)
    assert f"{(tmp_path / 'assets').resolve()}:/assets:ro" in binds
    assert any(b.endswith(":/opt/GeneFacePlusPlus/deep_3drecon/BFM:ro") for b in binds)
    env = set(head["Env"])
    assert {"CUDA_VISIBLE_DEVICES=0", "HF_HUB_OFFLINE=1", "HF_HOME=/assets/huggingface", "TORCH_HOME=/assets/torch",
            "HOME=/tmp"} <= env
    progress = [r["progress"] for r in ctx.reports]
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)
    assert any((r.get("checkpoint") or "").startswith("head:") and r["checkpoint"].endswith("steps_4000.ckpt")
               for r in ctx.reports)
    # 4000 < FINETUNE_FROM: the job says the fine-tuning phases will not run
    assert any(f"start at step {FINETUNE_FROM} will not run" in (r.get("log_line") or "") for r in ctx.reports)
    # ordinary lines reach the job, not only progress bars
    assert any("| Load trainval_dataset" in (r.get("log_line") or "") for r in ctx.reports)
    assert len(fake.removed) == 3
    geneface = tmp_path / "avatars" / "anna" / "geneface-job7"
    markers = sorted(p.name for p in geneface.glob("stage-*.done"))
    assert markers == ["stage-head.done", "stage-preprocess.done", "stage-torso.done"]
    assert "doppel-step 8/8: binarize" in (geneface / "logs" / "preprocess.log").read_text()


async def test_a_job_without_a_gpu_uses_the_configured_one_and_a_restarted_job_skips_finished_stages(tmp_path):
    geneface = tmp_path / "avatars" / "anna" / "geneface-job7"
    geneface.mkdir(parents=True)
    (geneface / "stage-preprocess.done").write_text("ok\n")
    with FakeDocker(_logs_for) as fake:
        _ctx, result = await _run(tmp_path, fake, gpu=None, gpus=[3, 5])
    assert isinstance(result, str)
    assert [c["_name"].split("-")[2] for c in fake.created] == ["head", "torso"]
    assert fake.created[0]["HostConfig"]["DeviceRequests"][0]["DeviceIDs"] == ["3"]


async def test_missing_assets_stop_the_job_before_any_container(tmp_path):
    with FakeDocker(_logs_for) as fake:
        _ctx, result = await _run(tmp_path, fake, with_assets=False)
    assert isinstance(result, assets.AssetError) and "doppel geneface fetch-assets" in str(result)
    assert "BFM/" in str(result) and fake.created == []


async def test_a_failing_step_stops_the_job_there_and_its_last_lines_reach_the_job(tmp_path):
    # fit_3dmm_landmark prints its error and exits 0; the missing output stops the script (exit 3)
    failing = PRE_LOG[:8] + ["| fitting 3DMM on 750 frames", "Traceback (most recent call last):",
                             "  File \"deep_3drecon/util/mesh_renderer.py\", line 9, in <module>",
                             "ImportError: pytorch3d was built without CUDA", "doppel-missing: 3dmm left no "
                             "data/processed/videos/doppel_anna/coeff_fit_mp.npy"]
    with FakeDocker(lambda body: failing, exit_code=3) as fake:
        ctx, result = await _run(tmp_path, fake)
    assert isinstance(result, RuntimeError)
    assert "GeneFace++ preprocess failed at step '3dmm': doppel-missing: 3dmm left no" in str(result)
    assert [c["_name"] for c in fake.created] == ["doppel-geneface-preprocess-doppel_anna"]  # no head, no torso
    logged = "\n".join(r.get("log_line") or "" for r in ctx.reports)
    assert "ImportError: pytorch3d was built without CUDA" in logged and "| fitting 3DMM on 750 frames" in logged
    log_file = tmp_path / "avatars" / "anna" / "geneface-job7" / "logs" / "preprocess.log"
    assert str(log_file) in str(result) and "ImportError" in log_file.read_text()
    assert not (tmp_path / "avatars" / "anna" / "geneface-job7" / "stage-preprocess.done").exists()


async def test_a_nerf_stage_that_exits_without_finishing_fails(tmp_path):
    (tmp_path / "avatars" / "anna" / "geneface-job7").mkdir(parents=True)
    (tmp_path / "avatars" / "anna" / "geneface-job7" / "stage-preprocess.done").write_text("ok\n")
    with FakeDocker(lambda body: LOG[:10]) as fake:
        _ctx, result = await _run(tmp_path, fake)
    assert isinstance(result, RuntimeError) and "head stopped without '| Training end'" in str(result)


async def test_cancel_stops_the_container(tmp_path):
    with FakeDocker(_logs_for, line_delay=0.01) as fake:
        _ctx, result = await _run(tmp_path, fake, cancel_at=250)
    assert isinstance(result, JobCancelled)
    assert fake.stopped and fake.removed
