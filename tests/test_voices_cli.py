"""Adding a voice: clips without a transcript get one from ASR, saved beside them and exportable as SRT/VTT."""
import os
import subprocess
import sys
from pathlib import Path

from bot.common.voices import add_voice
from core.types import JobStatus, VoiceEngine
from tests.conftest import ROOT
from tests.speech import speech_clips


async def test_add_voice_transcribes_missing_transcripts_and_queues_training(services):
    clips = speech_clips("en", min_seconds=2.5)[:2]
    files = [(p.name, p.read_bytes()) for p, _, _ in clips]
    added = await add_voice(services, "allison", files, [None, "A transcript I typed."])
    assert [c[2] for c in added.clips] == ["asr", "given"]
    assert "agent" in added.clips[0][1].lower()
    assert added.job is not None and added.job.status is JobStatus.QUEUED and added.job.kind == "voice"
    voice = await services.voices.get("allison")
    assert voice.engine is VoiceEngine.LITE and not voice.ready
    stored = await services.voices.clips("allison")
    assert [c.transcript_source for c in stored] == ["asr", "given"]
    first = stored[0].path
    srt = Path(first.replace(".wav", ".srt")).read_text(encoding="utf-8")
    vtt = Path(first.replace(".wav", ".vtt")).read_text(encoding="utf-8")
    assert srt.startswith("1\n00:00:0") and "-->" in srt
    assert vtt.startswith("WEBVTT") and "agent" in vtt.lower()


async def test_a_bad_clip_leaves_no_half_made_voice(services):
    good = speech_clips("en", min_seconds=2.5)[0][0]
    try:
        await add_voice(services, "broken", [("a.ogg", good.read_bytes()), ("b.ogg", b"not audio")])
    except Exception as exc:
        assert getattr(exc, "code", "") == "unreadable_audio"
    else:
        raise AssertionError("a broken clip was accepted")
    assert "broken" not in await services.voices.names()
    assert not (services.settings.data_dir / "voices" / "broken").exists()


def test_cli_voices_add_and_subtitles(tmp_path):
    from core.subtitles import read_cues

    (first, first_seconds, _), (second, _, _) = speech_clips("en", min_seconds=2.5)[:2]
    env = {**os.environ, "DOPPEL_DATA_DIR": str(tmp_path / "var")}
    add = subprocess.run([sys.executable, "-m", "bot.cli", "voices", "add", "ann", str(first), str(second)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    assert add.returncode == 0, add.stderr
    assert "(asr)" in add.stdout and "training job" in add.stdout
    subs = subprocess.run([sys.executable, "-m", "bot.cli", "voices", "subtitles", "ann", "--format", "vtt"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    # one valid file for both clips: one header, cues in order, the second clip's after the first clip's end
    assert subs.returncode == 0 and subs.stdout.startswith("WEBVTT") and subs.stdout.count("WEBVTT") == 1
    cues = read_cues(subs.stdout)
    assert len(cues) >= 2 and all(a <= b for a, b, _ in cues)
    assert all(cues[i][0] <= cues[i + 1][0] for i in range(len(cues) - 1))
    assert cues[-1][0] >= first_seconds - 0.1


async def test_an_edited_transcript_reaches_the_files_beside_the_clip(services):
    from bot.common.voices import edit_transcript

    clip = speech_clips("en", min_seconds=2.5)[0][0]
    await add_voice(services, "eve", [(clip.name, clip.read_bytes())])
    stored = (await services.voices.clips("eve"))[0]
    await edit_transcript(services, stored.id, "  Corrected   words here. ")
    again = (await services.voices.clips("eve"))[0]
    assert (again.transcript, again.transcript_source) == ("Corrected words here.", "edited")
    assert Path(stored.path.replace(".wav", ".txt")).read_text(encoding="utf-8").strip() == "Corrected words here."
    assert "Corrected words here." in Path(stored.path.replace(".wav", ".vtt")).read_text(encoding="utf-8")
