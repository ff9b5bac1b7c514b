"""Telegram admin and settings commands: who may run them, voice enrolment, avatar training with a live status message."""
from __future__ import annotations

import asyncio
import json

from core.types import JobStatus
from tests.speech import speech_clips
from tests.telegram_support import ADMIN, bot_settings, fake_tg, running_bot, texts_to  # noqa: F401  (fixture)

STRANGER = 602


async def test_admin_commands_refuse_everyone_else(fake_tg, tmp_path, engines):
    async with running_bot(bot_settings(tmp_path, fake_tg), engines):
        for command in ("/stats", "/jobs", "/allow 7", "/deny 7", "/add_voice anna", "/train_avatar bob", "/cancel 1"):
            fake_tg.text_update(STRANGER, command)
        # a burst of refusals is told three times (error replies are throttled per chat), and nothing else is said
        await fake_tg.wait_for(lambda: len(texts_to(fake_tg, STRANGER)) >= 3, 30)

        fake_tg.text_update(ADMIN, "/stats")
        stats = (await fake_tg.wait_for(lambda: texts_to(fake_tg, ADMIN), 30))[0]
        assert "Users: 2" in stats  # the stranger and the admin
        await asyncio.sleep(0.5)
        said = texts_to(fake_tg, STRANGER)
        assert len(said) == 3 and all("only the bot's admins" in t for t in said), said


async def test_an_allowlist_keeps_strangers_out_until_an_admin_allows_them(fake_tg, tmp_path, engines):
    settings = bot_settings(tmp_path, fake_tg, allowed_ids=[700])
    async with running_bot(settings, engines):
        fake_tg.text_update(STRANGER, "/help")
        await fake_tg.wait_for(lambda: texts_to(fake_tg, STRANGER), 30)
        assert "private" in texts_to(fake_tg, STRANGER)[0]

        fake_tg.text_update(ADMIN, f"/allow {STRANGER}")
        await fake_tg.wait_for(lambda: texts_to(fake_tg, ADMIN), 30)
        fake_tg.text_update(STRANGER, "/help")
        await fake_tg.wait_for(lambda: len(texts_to(fake_tg, STRANGER)) >= 2, 30)
        assert "/reset" in texts_to(fake_tg, STRANGER)[1]

        fake_tg.text_update(ADMIN, f"/deny {STRANGER}")
        await fake_tg.wait_for(lambda: len(texts_to(fake_tg, ADMIN)) >= 2, 30)
        fake_tg.text_update(STRANGER, "/help")
        await fake_tg.wait_for(lambda: len(texts_to(fake_tg, STRANGER)) >= 3, 30)
        assert "private" in texts_to(fake_tg, STRANGER)[2]


async def test_rate_limit_tells_a_flooding_user_to_wait(fake_tg, tmp_path, engines):
    async with running_bot(bot_settings(tmp_path, fake_tg, rate_limit_per_minute=2), engines):
        for _ in range(3):
            fake_tg.text_update(STRANGER, "/help")
        await fake_tg.wait_for(lambda: len(texts_to(fake_tg, STRANGER)) >= 3, 30)
        assert sum("too fast" in t for t in texts_to(fake_tg, STRANGER)) == 1


async def test_user_settings_export_and_forget(fake_tg, tmp_path, engines):
    user = 603
    async with running_bot(bot_settings(tmp_path, fake_tg), engines) as (_app, services):
        commands = ("/language fr", "/persona nobody", "/voice nobody", "/persona default", "/voice Reset", "/mydata")
        for i, command in enumerate(commands):
            fake_tg.text_update(user, command)  # one at a time, so the answers come in this order
            await fake_tg.wait_for(lambda n=i + 1: len(fake_tg.sent_to(user, "sendMessage", "sendDocument")) >= n, 30)
        await fake_tg.wait_for(lambda: fake_tg.sent_to(user, "sendDocument"), 30)
        said = texts_to(fake_tg, user)
        assert "Language here: 'fr'" in said[0]
        assert "no persona called 'nobody'" in said[1]
        assert "no voice called 'nobody'" in said[2]
        assert "I am 'default' here now" in said[3]
        assert said[4] == "Back to the standard voice."  # the reset words of every bot (bot/common)
        chat = await services.chats.get(f"tg:{user}")
        assert (chat.language, chat.persona) == ("fr", "default")
        export = json.loads(fake_tg.sent_to(user, "sendDocument")[0].files["document"])
        assert export["user"]["id"] == f"tg:{user}" and export["chat_settings"]["language"] == "fr"

        fake_tg.text_update(user, "/forget")
        await fake_tg.wait_for(lambda: any("deleted your profile" in t for t in texts_to(fake_tg, user)), 30)
        assert await services.users.get(f"tg:{user}") is None
        chat = await services.chats.get(f"tg:{user}")
        assert (chat.language, chat.persona) == (None, None), "/forget leaves the private chat's settings behind"


async def test_add_voice_from_recordings_then_follow_its_training(fake_tg, tmp_path, engines):
    (first, _s, _t), (second, _s2, _t2) = speech_clips("en", 3.0)[:2]
    group = -100300
    async with running_bot(bot_settings(tmp_path, fake_tg), engines) as (_app, services):
        # in a group, a recording not addressed to the bot is not answered; an admin's reply to it enrols it
        recording = fake_tg.voice_update(ADMIN, first.read_bytes(), chat_id=group, chat_type="group")["message"]
        fake_tg.text_update(ADMIN, "/add_voice anna", chat_id=group, chat_type="group", reply_to=recording)
        summary = await fake_tg.wait_for(lambda: [t for t in texts_to(fake_tg, group) if t.startswith("Voice 'anna'")], 60)
        assert "1 recording(s)" in summary[0] and "(no words heard)" not in summary[0]
        assert not fake_tg.sent_to(group, "sendVoice")

        status = await fake_tg.wait_for(lambda: [s for s in fake_tg.sent_to(group, "sendMessage") if "(job " in s.text], 30)
        job = (await services.jobs.list())[0]
        assert (job.kind, job.target, job.notify_chat) == ("voice", "anna", f"tg:{group}")

        # play the training worker: claim, report, finish; the one status message follows along
        await services.jobs.claim_next()
        await services.jobs.report(job.id, step=50, progress=0.5, eta_seconds=90)
        await fake_tg.wait_for(lambda: any("50%" in e.text for e in fake_tg.sent_to(group, "editMessageText")), 30)
        await services.jobs.finish(job.id, JobStatus.SUCCEEDED, "voice 'anna' is ready")
        await fake_tg.wait_for(lambda: any("is ready" in e.text for e in fake_tg.sent_to(group, "editMessageText")), 30)
        edits = fake_tg.sent_to(group, "editMessageText")
        assert {e.message_id for e in edits} == {status[0].message_id}
        assert "about 1 min left" in next(e.text for e in edits if "50%" in e.text)

        # in a private chat: the command first, then the recordings, then /done
        fake_tg.text_update(ADMIN, "/add_voice anna")
        await fake_tg.wait_for(lambda: texts_to(fake_tg, ADMIN), 30)
        fake_tg.voice_update(ADMIN, second.read_bytes())
        await fake_tg.wait_for(lambda: any(t.startswith("Got it (1)") for t in texts_to(fake_tg, ADMIN)), 30)
        fake_tg.text_update(ADMIN, "/done")
        await fake_tg.wait_for(lambda: any(t.startswith("Voice 'anna'") for t in texts_to(fake_tg, ADMIN)), 60)
        assert not fake_tg.sent_to(ADMIN, "sendVoice"), "a recording for enrolment is not answered as chat"
        assert len(await services.voices.clips("anna")) == 2


async def test_train_avatar_from_a_video_with_the_command_as_caption(fake_tg, tmp_path, engines):
    from geneface.testclip import make_clip, speech

    clip = make_clip(speech([speech_clips("en", 3.0)[0][0]], seconds=3.0))
    settings = bot_settings(tmp_path, fake_tg, avatar_min_seconds=2.0)
    async with running_bot(settings, engines) as (_app, services):
        fake_tg.video_update(ADMIN, b"not a video", caption="/train_avatar bob")
        await fake_tg.wait_for(lambda: texts_to(fake_tg, ADMIN), 30)
        assert not await services.jobs.list(), f"a broken video must be refused: {texts_to(fake_tg, ADMIN)}"

        fake_tg.video_update(ADMIN, clip.mp4(), caption="/train_avatar bob")
        await fake_tg.wait_for(lambda: any("Avatar 'bob'" in t for t in texts_to(fake_tg, ADMIN)), 60)
        job = (await services.jobs.list())[0]
        assert (job.kind, job.target, job.status) == ("avatar", "bob", JobStatus.QUEUED)

        fake_tg.text_update(ADMIN, f"/cancel {job.id}")
        await fake_tg.wait_for(lambda: any("cancelled" in t for t in texts_to(fake_tg, ADMIN)), 30)
        assert (await services.jobs.get(job.id)).status is JobStatus.CANCELLED

        fake_tg.text_update(ADMIN, "/jobs")
        await fake_tg.wait_for(lambda: any(t.startswith("Avatar 'bob'") and "\n" not in t and "cancelled" in t
                                           for t in texts_to(fake_tg, ADMIN)[-1:]), 30)


async def test_versions_restore_rename_retry_and_delete_from_telegram(fake_tg, tmp_path, engines):
    from tests.lifecycle_fixtures import voice_with_versions

    async with running_bot(bot_settings(tmp_path, fake_tg), engines) as (_app, services):
        failed = await voice_with_versions(services, "anna")
        fake_tg.text_update(STRANGER, "/delete voice anna")
        await fake_tg.wait_for(lambda: texts_to(fake_tg, STRANGER), 30)
        assert "only the bot's admins" in texts_to(fake_tg, STRANGER)[0]

        expected = [("/versions", "voice anna: ready v2 (kept v1, v2)"), ("/restore voice anna v1", "voice 'anna' now uses v1."),
                    ("/rename voice anna hanna", "voice 'anna' is now 'hanna'."),
                    (f"/retry {failed}", "'hanna': training again as job"),
                    ("/restore voice hanna v9", "There is no version v9 (kept: v1, v2)"),
                    ("/delete voice hanna", "voice 'hanna' deleted, with its files."),
                    ("/versions", "No voices or avatars yet.")]
        for command, answer in expected:
            fake_tg.text_update(ADMIN, command)
            await fake_tg.wait_for(lambda a=answer: any(a in t for t in texts_to(fake_tg, ADMIN)), 30)
        assert any(f"retry: job {failed}" in t for t in texts_to(fake_tg, ADMIN))
        assert "hanna" not in await services.voices.names()
        assert not (services.settings.data_dir / "voices" / "hanna").exists()
        assert [j.status for j in await services.jobs.list()] == [JobStatus.CANCELLED, JobStatus.FAILED]
