"""Admin commands on Discord: adding a voice from recordings, training an avatar with a live status message, jobs."""
from __future__ import annotations

import pytest

from core.types import JobStatus
from tests.fakes.discord_api import EPHEMERAL, Upload
from tests.fakes.discord_bot import discord_world
from tests.speech import speech_clips


@pytest.fixture
async def world(tmp_path, engines):
    async with discord_world(tmp_path, engines, avatar_min_seconds=2.0) as w:
        yield w


async def test_add_voice_transcribes_the_clip_and_queues_training(world):
    fake = world.fake
    path, _, truth = speech_clips("en", min_seconds=3.0)[0]
    await fake.invoke("add_voice", world.admin, world.channel, name="agent",
                      clip=Upload(path.name, path.read_bytes(), "audio/ogg"))
    summary = await fake.wait_for(lambda m: m.by_bot and "Voice **agent**" in m.content)
    first_word = truth.split()[0].strip(".,").lower()
    assert first_word in summary.content.lower() and "(asr)" in summary.content
    (job,) = await world.services.jobs.list()
    assert (job.kind, job.target, job.status) == ("voice", "agent", JobStatus.QUEUED)
    assert await world.services.voices.names() == ["agent"]


async def test_train_avatar_keeps_one_status_message_up_to_date(world):
    fake, jobs = world.fake, world.services.jobs
    from geneface.testclip import make_clip, speech

    # a real face talking: a portrait whose mouth follows real speech (the intake checks for one clear face)
    talking = make_clip(speech([c[0] for c in speech_clips("en", 1.0)[:3]], seconds=2.5))
    video = Upload("me.mp4", talking.mp4(), "video/mp4")
    await fake.invoke("train_avatar", world.admin, world.channel, name="me", source=video)
    status = await fake.wait_for(lambda m: m.by_bot and "(job 1)" in m.content and not m.payload.get("webhook_id"))
    assert "waiting for the trainer" in status.content

    # the worker's side, through the job repository as bot/worker.py reports it
    job = await jobs.claim_next(["avatar"])
    await jobs.report(job.id, step=5, progress=0.5, eta_seconds=120)
    await fake.wait_for(lambda m: m.id == status.id and "training 50%" in m.content and "2 min left" in m.content)
    await jobs.finish(job.id, JobStatus.SUCCEEDED, "ready to use")
    final = await fake.wait_for(lambda m: m.id == status.id and "done" in m.content)
    assert final.edits >= 2
    assert len([m for m in fake.bot_messages(world.channel) if "(job 1)" in m.content]) == 1


async def test_a_file_that_is_neither_video_nor_photo_is_refused_before_any_job(world):
    fake = world.fake
    await fake.invoke("train_avatar", world.admin, world.channel, name="me", source=Upload("me.txt", b"hello", "text/plain"))
    refusal = await fake.wait_for(lambda m: m.by_bot and "neither a video nor a photo" in m.content)
    # the refusal reaches the admin alone, and the public "thinking…" placeholder is gone
    assert refusal.flags & EPHEMERAL and refusal.payload.get("webhook_id")
    assert [m for m in fake.deleted if m.payload.get("interaction_metadata")]
    assert await world.services.jobs.list() == []


async def test_jobs_and_cancel(world):
    fake, jobs = world.fake, world.services.jobs
    job = await jobs.submit("voice", "agent", engine="lite", max_steps=10, gpu=None, params={})
    await fake.invoke("jobs", world.admin, world.channel)
    listing = await fake.wait_for(lambda m: m.by_bot and "agent" in m.content)
    assert listing.flags & EPHEMERAL and "waiting for the trainer" in listing.content
    await fake.invoke("cancel", world.admin, world.channel, job=job.id)
    await fake.wait_for(lambda m: m.by_bot and "cancelled" in m.content)
    assert (await jobs.get(job.id)).status is JobStatus.CANCELLED


async def test_versions_restore_rename_retry_and_delete_from_discord(world):
    from tests.lifecycle_fixtures import voice_with_versions

    fake, services = world.fake, world.services
    failed = await voice_with_versions(services, "anna")
    steps = [("versions", {}, "anna: ready v2 (kept v1, v2)"),
             ("restore", {"kind": "voice", "name": "anna", "version": 1}, "Voice 'anna' now uses v1"),
             ("restore", {"kind": "voice", "name": "anna", "version": 9}, "There is no version v9 (kept: v1, v2)"),
             ("rename", {"kind": "voice", "name": "anna", "new_name": "hanna"}, "Voice 'anna' is now 'hanna'"),
             ("retry", {"job": failed}, "**hanna**: training again as job"),
             ("delete", {"kind": "voice", "name": "hanna"}, "Voice 'hanna' deleted, with its files")]
    for command, options, answer in steps:
        await fake.invoke(command, world.admin, world.channel, **options)
        try:
            await fake.wait_for(lambda m, a=answer: m.by_bot and a in m.content, timeout=30)
        except TimeoutError:
            raise AssertionError(f"/{command}: {[m.content for m in fake.messages.values() if m.by_bot]}") from None
    assert "hanna" not in await services.voices.names()
    assert not (services.settings.data_dir / "voices" / "hanna").exists()
    assert [j.status for j in await services.jobs.list()] == [JobStatus.CANCELLED, JobStatus.FAILED]


async def test_jobs_lists_the_newest_first(world):
    fake, jobs = world.fake, world.services.jobs
    submitted = [await jobs.submit("voice", f"v{i}", engine="lite", max_steps=10, gpu=None, params={}) for i in range(25)]
    await fake.invoke("jobs", world.admin, world.channel)
    listing = await fake.wait_for(lambda m: m.by_bot and "(job " in m.content)
    shown = [int(line.split("(job ")[1].split(")")[0]) for line in listing.content.splitlines()]
    newest = [job.id for job in reversed(submitted)]
    assert shown == newest[:len(shown)] and len(shown) >= 10
