"""Adding a voice from recordings: store the clips, transcribe those without a transcript, queue its training."""
from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from adapters.media import Source, decode_audio, encode_wav
from bot.wiring import Services
from core.errors import BadInput
from core.subtitles import to_srt, to_vtt
from core.types import Audio, Job, Transcript, Voice, VoiceEngine

UNSURE_LOGPROB = -1.0  # Whisper's own "compression/logprob" fallback threshold
UNSURE_NO_SPEECH = 0.6
# the multilingual model's probability of the expected language: English clips scored 0.97-0.99,
# French and Spanish ones 0.00-0.16, on 12 shared clips each
UNSURE_LANGUAGE = 0.5
_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
MAX_CLIP_SECONDS = 300.0


@dataclass(frozen=True)
class AddedVoice:
    name: str
    clips: list[tuple[str, str, str]]  # (file, transcript, source)
    seconds: float
    job: Job | None


def _write_transcript_files(clip: Path, text: str, segments: list[tuple[float, float, str]]) -> None:
    # the transcript lives beside the clip too, so a voice folder is usable (and trainable) without the database
    clip.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
    clip.with_suffix(".srt").write_text(to_srt(segments), encoding="utf-8")
    clip.with_suffix(".vtt").write_text(to_vtt(segments), encoding="utf-8")


async def edit_transcript(services: Services, clip_id: int, text: str) -> None:
    """An admin's correction replaces the automatic transcript in the database and in the files beside the clip."""
    text = " ".join(text.split())
    if not text:
        raise BadInput("A transcript can't be empty.")
    clip = await services.voices.edit_transcript(clip_id, text)
    _write_transcript_files(Path(clip.path), text, [(0.0, clip.seconds, text)])


def quality_summary(voice: Voice) -> str:
    """The scores the quality gate (RVC/quality_gate.py) stored on the voice, as an admin reads them; "" if none."""
    q = voice.params.get("quality")
    if not isinstance(q, dict) or "similarity" not in q or "wer" not in q:
        return ""
    from RVC.quality_gate import what_to_do

    advice = what_to_do(q)
    return (f"Quality check {'passed' if q.get('passed') else 'failed'}"
            f"{' (' + q['artifact'] + ')' if q.get('artifact') else ''}: similarity {q['similarity']:.2f} "
            f"(base voice {q.get('base_similarity', 0.0):.2f}), WER {q['wer']:.0%} (base voice {q.get('base_wer', 0.0):.0%})"
            + (f". {advice}" if advice else ""))


def is_confident(transcript: Transcript, language: str | None) -> bool:
    """Whether an automatic transcript can be trusted as what was said; an unsure one is flagged for the admin
    ("asr-unsure") rather than stored as the truth. Whisper invents stock phrases ("Thank you for watching")
    for speech it does not follow: those come with a low average log-probability, a high no-speech
    probability, or a language other than the one it was asked for (and add_voice also asks the
    multilingual model which language it hears)."""
    if not transcript.text.strip():
        return False
    if language and transcript.language and transcript.language != language:
        return False
    if transcript.avg_logprob is not None and transcript.avg_logprob < UNSURE_LOGPROB:
        return False
    return not (transcript.no_speech_prob is not None and transcript.no_speech_prob > UNSURE_NO_SPEECH)


def _new_clip_path(folder: Path, start: int) -> Path:
    """The first free clip name from `start` on, taken with O_EXCL: two admins adding clips to one voice at the
    same moment (in one process or two) each get names of their own, never each other's files."""
    number = start
    while True:
        path = folder / f"clip-{number:03d}.wav"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            return path
        except FileExistsError:
            number += 1


def voice_dir(services: Services, name: str) -> Path:
    return services.settings.data_dir / "voices" / name


def _check_set(new: list[Audio], existing: list[Path], profile: str) -> None:
    """The training job's own rules, run on everything it will train on: the clips kept so far and the new ones."""
    from RVC.reference import check_reference, limits_for

    kept = [decode_audio(p.read_bytes()) for p in existing]
    check_reference(kept + new, limits_for(profile), new_from=len(kept))


async def add_voice(services: Services, name: str, files: Sequence[tuple[str, Source]], transcripts: list[str | None] | None = None,
                    *, engine: VoiceEngine = VoiceEngine.LITE, notify_chat: str | None = None, max_steps: int = 0,
                    gpu: int | None = None) -> AddedVoice:
    """Every clip is checked before anything is written, so a bad file leaves no half-made voice behind.

    Adding clips to a voice that is ready keeps it serving its current version while the next one trains.
    """
    if not _NAME.match(name):
        raise BadInput("A voice name may use letters, digits, '-' and '_' (up to 64).")
    if not files:
        raise BadInput("Send at least one recording of the voice.")
    transcripts = list(transcripts or [None] * len(files))
    # off the event loop, each clip bounded: a reference recording longer than this is not a clip
    decoded = [await asyncio.to_thread(decode_audio, data, max_seconds=MAX_CLIP_SECONDS) for _, data in files]
    folder = voice_dir(services, name)
    existing = sorted(folder.glob("clip-*.wav"))
    profile = services.settings.voice_train_profile
    if engine is not VoiceEngine.TTS:
        # silent, clipped, music, too little speech or several speakers: refused here, before anything is
        # stored or trained, by the same rules the training job applies
        await asyncio.to_thread(_check_set, decoded, existing, profile)
    language = None if services.settings.language == "auto" else services.settings.language
    texts = []
    for audio, given in zip(decoded, transcripts):
        if given and given.strip():
            texts.append((given.strip(), "given", [(0.0, audio.seconds, given.strip())]))
        else:
            transcript = await services.recognizer.transcribe(audio, language)
            sure = is_confident(transcript, language)
            if sure and language:
                heard = await asyncio.to_thread(services.recognizer.language_probability, audio, language)
                sure = heard is None or heard >= UNSURE_LANGUAGE
            source = "asr" if sure else "asr-unsure"
            texts.append((transcript.text, source, list(transcript.segments)))

    folder.mkdir(parents=True, exist_ok=True)
    made: list[tuple[str, str, str]] = []
    entries = []
    for audio, (text, source, segments) in zip(decoded, texts):
        path = await asyncio.to_thread(_new_clip_path, folder, len(existing))
        await asyncio.to_thread(path.write_bytes, encode_wav(audio))
        await asyncio.to_thread(_write_transcript_files, path, text, segments)
        entries.append((path, audio.seconds, text, source))
        made.append((path.name, text, source))

    ready = engine is VoiceEngine.TTS
    await services.voices.create_missing(name, engine, language or "en", ready=ready, params={"dir": str(folder)})
    for path, seconds, text, source in entries:
        await services.voices.add_clip(name, str(path), seconds, text, source)
    job = None
    if not ready:
        from RVC.reference import limits_for

        job = await services.jobs.submit("voice", name, engine=engine.value, max_steps=max_steps, gpu=gpu,
                                         params={"dir": str(folder), "profile": profile,
                                                 "min_seconds": limits_for(profile).min_speech_seconds,
                                                 "cache_dir": str(services.settings.cache_dir),
                                                 "quality_gate": services.settings.voice_quality_gate},
                                         notify_chat=notify_chat)
    return AddedVoice(name, made, sum(e[1] for e in entries), job)
