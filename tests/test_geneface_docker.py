"""The GeneFace++ engine's commands, Docker requests and log parsing, against a Docker API server on 127.0.0.1.

There is no Docker engine here. The log lines in tests/data/geneface_head_train.log follow the formats
GeneFace++'s trainer prints (tqdm with unit "step", "saving model to ...model_ckpt_steps_N.ckpt",
"| Training end.."); they were written from its source, not captured from a GPU run.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.jobs import JobCancelled
from core.types import Job, JobStatus
from geneface.docker_engine import (GeneFaceDocker, StageProgress, infer_command, parse_line, split_lines, stages,
                                    train_in_docker, video_id)
from tests.fake_docker import FakeDocker

LOG = (Path(__file__).parent / "data" / "geneface_head_train.log").read_text().splitlines()


def test_stage_commands_follow_the_geneface_guide():
    vid = video_id("anna-2")
    assert vid == "doppel_anna_2"
    pre, head, torso = stages(vid, head_steps=4000, torso_steps=3000)
    assert "bash data_gen/runs/nerf/run.sh doppel_anna_2" in pre.command[-1]
    assert "cp -r egs/datasets/May egs/datasets/doppel_anna_2" in pre.command[-1]
    assert "s/^video_id: .*/video_id: doppel_anna_2/" in pre.command[-1]
    assert "--config=egs/datasets/doppel_anna_2/lm3d_radnerf_sr.yaml" in head.command[-1]
    assert "--exp_name=motion2video_nerf/doppel_anna_2_head" in head.command[-1]
    assert "max_updates=4000" in head.command[-1] and head.max_steps == 4000
    assert "--config=egs/datasets/doppel_anna_2/lm3d_radnerf_torso_sr.yaml" in torso.command[-1]
    assert "head_model_dir=checkpoints/motion2video_nerf/doppel_anna_2_head,max_updates=3000" in torso.command[-1]
    inf = infer_command(vid, "/io/a.wav", "/io/a.mp4")
    assert "--torso_ckpt=checkpoints/motion2video_nerf/doppel_anna_2_torso" in inf and "--drv_aud=/io/a.wav" in inf


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


def test_progress_of_a_stage_maps_into_the_whole_job():
    head = stages("v", head_steps=4000)[1]
    p = StageProgress(head, offset=0.15, share=0.45)
    step, overall, eta = p.update(parse_line("2000step [02:41, 12.50step/s, loss=0.0098]"))
    assert step == 2000 and overall == pytest.approx(0.15 + 0.45 * 0.5) and eta == pytest.approx(2000 / 12.5)
    pre = StageProgress(stages("v")[0], offset=0.0, share=0.15)
    for _ in range(3):
        update = pre.update(parse_line("Done"))
    assert update[0] == 3 and update[1] == pytest.approx(0.15 * 3 / 9)


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


def _logs_for(body: dict) -> list[str]:
    cmd = body["Cmd"][-1]
    if "run.sh" in cmd:
        return ["Processing doppel_anna"] + ["Done"] * 9
    return LOG


async def _run(tmp_path: Path, fake: FakeDocker, **ctx_kw) -> tuple[Ctx, str | BaseException]:
    avatar = tmp_path / "avatars" / "anna"
    video_dir = avatar / "geneface-job7" / "data" / "raw" / "videos"
    video_dir.mkdir(parents=True)
    # the 512×512 input is already made (by prepare_input); the stages are what is tested here
    (video_dir / "doppel_anna.mp4").write_bytes(b"\0")
    engine = GeneFaceDocker("doppel/geneface:test", tmp_path, docker_url=fake.url, assets_dir=tmp_path / "assets")
    job = Job(id=7, kind="avatar", target="anna", status=JobStatus.RUNNING, engine="geneface", max_steps=4000, gpu=1)
    ctx = Ctx(job, {"dir": str(avatar), "source": str(tmp_path / "missing.mp4")}, "", str(tmp_path / "work"), **ctx_kw)
    try:
        result: str | BaseException = await train_in_docker(ctx, engine)
    except BaseException as exc:  # noqa: BLE001 - the test looks at what came out
        result = exc
    return ctx, result


async def test_training_runs_three_containers_with_the_gpu_and_mounts(tmp_path):
    with FakeDocker(_logs_for) as fake:
        ctx, result = await _run(tmp_path, fake)
    assert isinstance(result, str) and "ready" in result
    assert [c["_name"] for c in fake.created] == ["doppel-geneface-preprocess-doppel_anna", "doppel-geneface-head-doppel_anna",
                                                   "doppel-geneface-torso-doppel_anna"]
    head = fake.created[1]
    assert head["Image"] == "doppel/geneface:test" and head["WorkingDir"] == "/opt/GeneFacePlusPlus"
    requests = head["HostConfig"]["DeviceRequests"]
    assert requests[0]["DeviceIDs"] == ["1"] and requests[0]["Capabilities"] == [["gpu"]]
    binds = head["HostConfig"]["Binds"]
    assert any(b.endswith(":/opt/GeneFacePlusPlus/checkpoints/motion2video_nerf:rw") for b in binds)
    assert any(b.endswith(":/opt/GeneFacePlusPlus/deep_3drecon/BFM:ro") for b in binds)
    assert "CUDA_VISIBLE_DEVICES=0" in head["Env"]
    progress = [r["progress"] for r in ctx.reports]
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)
    assert any((r.get("checkpoint") or "").startswith("head:") and r["checkpoint"].endswith("steps_4000.ckpt")
               for r in ctx.reports)
    assert len(fake.removed) == 3
    markers = sorted(p.name for p in (tmp_path / "avatars" / "anna" / "geneface-job7").glob("stage-*.done"))
    assert markers == ["stage-head.done", "stage-preprocess.done", "stage-torso.done"]


async def test_a_restarted_job_skips_finished_stages(tmp_path):
    geneface = tmp_path / "avatars" / "anna" / "geneface-job7"
    geneface.mkdir(parents=True)
    (geneface / "stage-preprocess.done").write_text("ok\n")
    with FakeDocker(_logs_for) as fake:
        ctx, result = await _run(tmp_path, fake)
    assert isinstance(result, str)
    assert [c["_name"].split("-")[2] for c in fake.created] == ["head", "torso"]


async def test_cancel_stops_the_container_and_a_failed_stage_says_why(tmp_path):
    with FakeDocker(_logs_for, line_delay=0.01) as fake:
        ctx, result = await _run(tmp_path, fake, cancel_at=250)
    assert isinstance(result, JobCancelled)
    assert fake.stopped and fake.removed
    with FakeDocker(lambda body: ["Traceback (most recent call last):", "RuntimeError: CUDA out of memory."],
                    exit_code=1) as fake:
        ctx, result = await _run(tmp_path / "b", fake)
    assert isinstance(result, RuntimeError) and "preprocess failed: RuntimeError: CUDA out of memory." in str(result)
