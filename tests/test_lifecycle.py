"""A voice's and an avatar's whole life, as an admin lives it: trained, retrained while it keeps answering,
a training cancelled (during its data preparation too) within 5 s with the previous version still serving,
retried, restored, renamed, deleted with its files."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from bot.common import lifecycle
from bot.common.voices import add_voice
from bot.worker import Worker
from core.errors import BadInput, BadReference, UnknownVoice
from core.types import JobStatus, VoiceEngine
from storage.avatars import AvatarRepository
from tests.speech import speech_clips

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(settings):
    """These stories are about versions, not sound: the tiny test network speaks noise, which the quality gate
    (tested in test_voice_gate.py and test_voice_lite.py) would rightly refuse."""
    return settings.model_copy(update={"voice_quality_gate": False})


def _clips(lang: str, n: int, skip: int = 0) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p, _, _ in speech_clips(lang, 4.0)[skip:skip + n]]


async def _wait_for(predicate, timeout: float, what: str, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(poll)


async def _speak(services, name: str):
    """What a reply does: look the voice up, then convert the base TTS into it."""
    voice = await services.voices.get(name)
    assert voice.ready, f"voice {name} is not ready"
    speech = await services.synthesizers[0].synthesize("Still here, in my own voice.", "en")
    out = await services.converters[VoiceEngine.LITE].convert(speech, voice)
    assert out.seconds == pytest.approx(speech.seconds, abs=0.05) and np.abs(out.samples).max() > 0
    return voice.params["version"]


async def test_a_voice_serves_its_version_while_the_next_trains_and_after_a_cancel(services):
    worker = Worker(services.jobs, services.settings.data_dir, kinds=["voice"], cancel_poll_seconds=0.2)
    first = await add_voice(services, "anna", _clips("en", 3), ["words"] * 3, max_steps=6)
    assert (await lifecycle.entry(services, "voice", "anna")).state == "training"
    assert (await worker.run_once()).status is JobStatus.SUCCEEDED
    assert await _speak(services, "anna") == 1

    # one more recording: the voice stays live on v1 while v2 is prepared
    more = await add_voice(services, "anna", _clips("en", 1, skip=3), ["words"], max_steps=6)
    entry = await lifecycle.entry(services, "voice", "anna")
    assert entry.ready and entry.serving == 1 and entry.state == "ready+training"
    run = asyncio.create_task(worker.run_once())

    async def preparing():
        job = await services.jobs.get(more.job.id)
        return job.status is JobStatus.RUNNING and "features" in job.log_tail

    await _wait_for(preparing, 120, "feature extraction to start")
    asked = time.monotonic()
    await services.jobs.cancel(more.job.id)
    await _wait_for(lambda: _status_is(services, more.job.id, JobStatus.CANCELLED), 5, "the cancel (5 s)")
    assert time.monotonic() - asked < 5
    await asyncio.wait_for(run, 30)
    assert await _speak(services, "anna") == 1  # the cancelled training changed nothing that serves
    assert "retry" in lifecycle.describe(await lifecycle.entry(services, "voice", "anna"))

    # the retry trains v2; replies keep coming in v1 until it is done
    again = await lifecycle.retry(services, more.job.id)
    with pytest.raises(BadInput, match="already training"):
        await lifecycle.retry(services, more.job.id)
    run = asyncio.create_task(worker.run_once())
    served_during = []
    while not run.done():
        job = await services.jobs.get(again.id)
        version = await _speak(services, "anna")
        if job.status is JobStatus.RUNNING and not (await services.jobs.get(again.id)).status.finished:
            served_during.append(version)
        await asyncio.sleep(0.5)  # a reply now and then; the training needs the cores more
    assert (await run).status is JobStatus.SUCCEEDED
    assert len(served_during) >= 2 and set(served_during) == {1}
    assert await _speak(services, "anna") == 2
    entry = await lifecycle.entry(services, "voice", "anna")
    assert entry.versions == (1, 2) and entry.serving == 2

    # restore, rename, delete
    assert "v1" in await lifecycle.restore(services, "voice", "anna", 1)
    assert await _speak(services, "anna") == 1
    with pytest.raises(BadInput, match="no version v7"):
        await lifecycle.restore(services, "voice", "anna", 7)
    await services.chats.set("tg:5", voice="anna")
    await lifecycle.rename(services, "voice", "anna", "hanna")
    assert (await services.chats.get("tg:5")).voice == "hanna"  # the chat that chose it follows
    with pytest.raises(UnknownVoice):
        await services.voices.get("anna")
    assert not (services.settings.data_dir / "voices" / "anna").exists()
    assert await _speak(services, "hanna") == 1  # the artifact moved with the folder
    assert all("/hanna/" in c.path and Path(c.path).exists() for c in await services.voices.clips("hanna"))
    assert {j.target for j in await services.jobs.list()} == {"hanna"}
    await lifecycle.restore(services, "voice", "hanna", 2)
    assert await _speak(services, "hanna") == 2

    folder = services.settings.data_dir / "voices" / "hanna"
    job_dirs = [services.settings.data_dir / "jobs" / str(j.id) for j in await services.jobs.list()]
    assert folder.exists() and any(d.exists() for d in job_dirs)
    await lifecycle.delete(services, "voice", "hanna")
    assert "hanna" not in await services.voices.names() and (await services.chats.get("tg:5")).voice is None
    assert not folder.exists() and not any(d.exists() for d in job_dirs)
    from sqlalchemy import func, select

    from storage.models import VoiceClip

    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(VoiceClip)) == 0
    assert first.job.id != again.id


async def _status_is(services, job_id: int, status: JobStatus) -> bool:
    return (await services.jobs.get(job_id)).status is status


async def test_a_failed_first_training_leaves_the_voice_not_ready_with_a_retry(services):
    worker = Worker(services.jobs, services.settings.data_dir, kinds=["voice"], cancel_poll_seconds=0.2)
    added = await add_voice(services, "bea", _clips("en", 2), ["words"] * 2, max_steps=4)
    # the recordings vanish before the worker gets to them: the job fails, nothing is marked ready
    for clip in (services.settings.data_dir / "voices" / "bea").glob("clip-*.wav"):
        clip.rename(clip.with_suffix(".bak"))
    failed = await worker.run_once()
    assert failed.status is JobStatus.FAILED and "no recordings" in failed.message
    entry = await lifecycle.entry(services, "voice", "bea")
    assert entry.state == "not ready" and f"retry: job {added.job.id}" in lifecycle.describe(entry)
    for clip in (services.settings.data_dir / "voices" / "bea").glob("clip-*.bak"):
        clip.rename(clip.with_suffix(".wav"))
    retried = await lifecycle.retry(services, added.job.id)
    assert (await worker.run_once()).status is JobStatus.SUCCEEDED
    assert (await lifecycle.entry(services, "voice", "bea")).serving == 1 and retried.id != added.job.id


@pytest.mark.parametrize("sets", [("en", 3, "fr", 1), ("fr", 1, "en", 3), ("en", 2, "fr", 2), ("es", 3, "fr", 1)])
async def test_a_mixed_speaker_set_is_refused_at_intake(services, sets):
    a, na, b, nb = sets
    files = _clips(a, na) + _clips(b, nb)
    with pytest.raises(BadReference, match="more than one speaker"):
        await add_voice(services, "mix", files, ["words"] * len(files))
    assert "mix" not in await services.voices.names() and await services.jobs.list() == []


async def test_a_recording_from_someone_else_is_refused_for_a_live_voice(services):
    await add_voice(services, "cara", _clips("en", 3), ["words"] * 3)
    with pytest.raises(BadReference, match="recording 1 of those just sent sounds like someone else"):
        await add_voice(services, "cara", _clips("fr", 1), ["mots"])
    assert len(await services.voices.clips("cara")) == 3
    assert len(list((services.settings.data_dir / "voices" / "cara").glob("clip-*.wav"))) == 3


async def test_intake_applies_the_training_profile_minimum(services):
    services.settings.voice_train_profile = "full"  # 30 s of speech, as the full training needs
    with pytest.raises(BadReference, match="at least 30 s"):
        await add_voice(services, "dan", _clips("en", 2), ["words"] * 2)
    assert "dan" not in await services.voices.names()
    services.settings.voice_train_profile = "tiny"
    added = await add_voice(services, "dan", _clips("en", 2), ["words"] * 2)
    params, _ = await services.jobs.params(added.job.id)
    assert params["profile"] == "tiny" and params["min_seconds"] == 2.0


async def test_an_unsure_transcript_is_flagged_not_stored_as_truth(services):
    # French clips for a voice whose language is English: the English model writes "Thank you for watching!"
    english = await add_voice(services, "eli", _clips("en", 2))
    assert [source for _, _, source in english.clips] == ["asr", "asr"]
    french = await add_voice(services, "eloise", _clips("fr", 2))
    assert [source for _, _, source in french.clips] == ["asr-unsure", "asr-unsure"], french.clips
    assert [c.transcript_source for c in await services.voices.clips("eloise")] == ["asr-unsure"] * 2


async def test_an_avatar_cancel_during_face_tracking_lands_within_5_s_and_v1_keeps_drawing(services, tmp_path):
    from bot.common.avatars import submit_avatar_training
    from tests.avatar_clips import training_mp4

    avatars = AvatarRepository(services.sessions)
    services.settings.avatar_min_seconds = 10.0
    job = await submit_avatar_training(services, "ava", training_mp4(), config="tiny", max_steps=400)
    v1 = tmp_path / "ava-v1"
    v1.mkdir()
    await avatars.add_version("ava", str(v1), {"steps": 1}, engine="lite")  # as if an earlier training had finished
    worker = Worker(services.jobs, services.settings.data_dir, kinds=["avatar"], cancel_poll_seconds=0.2)
    run = asyncio.create_task(worker.run_once())

    async def tracking():
        current = await services.jobs.get(job.id)
        return current.status is JobStatus.RUNNING and "tracking the face" in current.log_tail

    await _wait_for(tracking, 60, "face tracking to start")
    await asyncio.sleep(0.5)
    asked = time.monotonic()
    await services.jobs.cancel(job.id)
    finished = await asyncio.wait_for(run, 5)
    assert time.monotonic() - asked < 5 and finished.status is JobStatus.CANCELLED
    assert finished.progress < 0.1  # still preparing: no training step had run
    avatar = await avatars.get("ava")
    assert avatar.ready and avatar.artifact_path == str(v1) and avatar.params["version"] == 1
    assert not list((services.settings.data_dir / "avatars" / "ava").glob("lite-job*"))

    await lifecycle.delete(services, "avatar", "ava")
    assert await avatars.find("ava") is None
    assert not (services.settings.data_dir / "avatars" / "ava").exists()


async def test_a_geneface_container_is_stopped_within_5_s_of_a_cancel(services, tmp_path):
    """A container that prints nothing for a long while (GeneFace++ preprocessing) is stopped by the cancel
    itself, not at its next log line."""
    from tests.fake_docker import FakeDocker
    from tests.test_geneface_docker import make_assets

    folder = services.settings.data_dir / "avatars" / "gene"
    assets = make_assets(tmp_path / "assets")
    with FakeDocker(lambda body: ["Processing doppel_gene", "still working"], line_delay=120) as fake:
        job = await services.jobs.submit("avatar", "gene", engine="geneface", max_steps=100, gpu=None, params={
            "dir": str(folder), "source": str(tmp_path / "unused.mp4"), "image": "doppel/geneface:test",
            "docker_url": fake.url, "data_dir": str(services.settings.data_dir), "assets_dir": str(assets)})
        await AvatarRepository(services.sessions).new_source("gene", "geneface", "", {})
        video = folder / f"geneface-job{job.id}" / "data" / "raw" / "videos" / "doppel_gene.mp4"
        video.parent.mkdir(parents=True)
        video.write_bytes(b"\0")  # the 512x512 input is made; the containers are what is tested here
        worker = Worker(services.jobs, services.settings.data_dir, kinds=["avatar"], cancel_poll_seconds=0.2)
        run = asyncio.create_task(worker.run_once())
        await _wait_for(lambda: _has_container(fake), 30, "the first container")
        await asyncio.sleep(1.0)
        asked = time.monotonic()
        await services.jobs.cancel(job.id)
        finished = await asyncio.wait_for(run, 5)
        assert finished.status is JobStatus.CANCELLED and time.monotonic() - asked < 5
        await _wait_for(lambda: _stopped(fake), 5, "the container to be stopped")
        assert not (await AvatarRepository(services.sessions).get("gene")).ready


async def _has_container(fake) -> bool:
    return bool(fake.created)


async def _stopped(fake) -> bool:
    return bool(fake.stopped)


@pytest.mark.timeout(1500)  # two worker processes start and train; a busy machine slows both
async def test_a_killed_voice_training_resumes_from_a_later_step_than_0(services):
    """The worker process is killed between step checkpoints (every 50); the one written by time is resumed from."""
    import os
    import signal
    import subprocess
    import sys

    from sqlalchemy import update

    from storage.models import JobRecord
    from tests.conftest import ROOT

    added = await add_voice(services, "fay", _clips("en", 3), ["words"] * 3, max_steps=40)
    async with services.sessions.begin() as session:
        params, _ = await services.jobs.params(added.job.id)
        await session.execute(update(JobRecord).where(JobRecord.id == added.job.id)
                              .values(params={**params, "checkpoint_seconds": 1.0, "max_seconds": 300}))
    env = {**os.environ, "DOPPEL_DATA_DIR": str(services.settings.data_dir), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "bot.cli", "worker", "--kind", "voice"]
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen_steps = []
    try:
        async def checkpointed():
            job = await services.jobs.get(added.job.id)
            seen_steps.append(job.step)
            assert first.poll() is None, first.stdout.read().decode()[-2000:]
            _, checkpoint = await services.jobs.params(added.job.id)
            return checkpoint and job.step >= 3

        await _wait_for(checkpointed, 480, "a checkpoint after step 3", poll=0.1)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert 1 in seen_steps or 2 in seen_steps  # progress shows from the first steps, not only at checkpoints
    crashed = await services.jobs.get(added.job.id)
    assert crashed.status is JobStatus.RUNNING and crashed.step < 40

    second = await asyncio.create_subprocess_exec(*command, "--once", cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                  stderr=asyncio.subprocess.STDOUT)
    output = asyncio.create_task(second.communicate())
    resumed: list[str] = []
    deadline = time.monotonic() + 600
    # the job keeps its last 20 log lines, and a busy machine writes more of them (a checkpoint a second, by time):
    # the resume is read while the second worker runs, not from what is left at its end
    try:
        while not output.done():
            assert time.monotonic() < deadline, "the second worker did not finish in 600 s"
            job = await services.jobs.get(added.job.id)
            resumed += [line for line in job.log_tail.splitlines() if "resumed from the checkpoint" in line and line not in resumed]
            await asyncio.wait([output], timeout=0.1)
    finally:
        if second.returncode is None:
            second.kill()
    out, _ = await output
    assert second.returncode == 0, out.decode()[-2000:]
    done = await services.jobs.get(added.job.id)
    assert done.status is JobStatus.SUCCEEDED, done.message
    assert resumed and int(resumed[0].rsplit(" ", 1)[1]) >= 3, resumed
    assert done.step == 40 and (await services.voices.get("fay")).params["version"] == 1


async def test_the_command_line_lists_restores_renames_retries_and_deletes(services):
    import os
    import sys

    from tests.conftest import ROOT
    from tests.lifecycle_fixtures import voice_with_versions

    failed = await voice_with_versions(services, "anna")
    env = {**os.environ, "DOPPEL_DATA_DIR": str(services.settings.data_dir)}

    async def doppel(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot.cli", *args, cwd=ROOT, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        return proc.returncode, out.decode()

    code, out = await doppel("voices", "list")
    assert code == 0 and f"voice anna: ready v2 (kept v1, v2) · last training failed: out of memory (retry: job {failed})" in out
    assert await doppel("voices", "restore", "anna", "v1") == (0, "voice 'anna' now uses v1\n")
    code, out = await doppel("voices", "restore", "anna", "v3")
    assert code == 2 and "There is no version v3 (kept: v1, v2)" in out
    assert await doppel("voices", "rename", "anna", "hanna") == (0, "voice 'anna' is now 'hanna'\n")
    code, out = await doppel("jobs", "--retry", str(failed))
    assert code == 0 and f"voice 'hanna' again (retry of job {failed})" in out
    assert await doppel("voices", "delete", "hanna") == (0, "voice 'hanna' deleted, with its files\n")
    assert "hanna" not in await services.voices.names()


async def test_a_cancel_reaches_a_worker_in_another_process_within_5_s(services):
    """`doppel worker` runs apart from the bots: the cancel goes through the database, during feature extraction."""
    import os
    import sys

    from tests.conftest import ROOT

    added = await add_voice(services, "gus", _clips("en", 4), ["words"] * 4, max_steps=40)
    env = {**os.environ, "DOPPEL_DATA_DIR": str(services.settings.data_dir), "PYTHONPATH": str(ROOT)}
    worker = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot.cli", "worker", "--kind", "voice", "--once",
                                                  cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                  stderr=asyncio.subprocess.STDOUT)
    try:
        async def preparing():
            job = await services.jobs.get(added.job.id)
            return "features" in job.log_tail

        await _wait_for(preparing, 180, "feature extraction to start")
        asked = time.monotonic()
        await services.jobs.cancel(added.job.id)
        await _wait_for(lambda: _status_is(services, added.job.id, JobStatus.CANCELLED), 5, "the cancel (5 s)")
        assert time.monotonic() - asked < 5
        out, _ = await asyncio.wait_for(worker.communicate(), 60)
        assert worker.returncode == 0 and b"cancelled" in out, out[-2000:]
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    assert not (await services.voices.get("gus")).ready


async def test_an_avatar_restores_renames_and_is_deleted_with_its_files(services):
    avatars = AvatarRepository(services.sessions)
    folder = services.settings.data_dir / "avatars" / "ava"
    await avatars.new_source("ava", "lite", str(folder / "source-1.mp4"), {})
    for job in (3, 4):  # two finished trainings, each in its own folder
        (folder / f"lite-job{job}").mkdir(parents=True)
        await avatars.add_version("ava", str(folder / f"lite-job{job}"), {"steps": 10, "job": job}, engine="lite")
    await services.chats.set("dc:1", avatar="ava")
    entry = await lifecycle.entry(services, "avatar", "ava")
    assert entry.state == "ready" and entry.versions == (1, 2) and entry.serving == 2

    await lifecycle.restore(services, "avatar", "ava", 1)
    assert (await avatars.get("ava")).artifact_path == str(folder / "lite-job3")
    await lifecycle.rename(services, "avatar", "ava", "eva")
    moved = await avatars.get("eva")
    assert moved.artifact_path.endswith("/avatars/eva/lite-job3") and Path(moved.artifact_path).is_dir()
    assert await avatars.find("ava") is None and (await services.chats.get("dc:1")).avatar == "eva"
    await lifecycle.restore(services, "avatar", "eva", 2)
    assert (await avatars.get("eva")).artifact_path.endswith("/avatars/eva/lite-job4")
    await avatars.new_source("ava", "lite", "", {})  # a new one under the old name
    with pytest.raises(BadInput, match="The name 'eva' is taken by another avatar"):
        await lifecycle.rename(services, "avatar", "ava", "eva")

    await lifecycle.delete(services, "avatar", "eva")
    assert await avatars.find("eva") is None and (await services.chats.get("dc:1")).avatar is None
    assert await avatars.find("ava") is not None  # the other one is left alone
    assert not (services.settings.data_dir / "avatars" / "eva").exists()
