"""Adding a voice from recordings: store the clips, transcribe those without a transcript, queue its training."""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

from adapters.media import Source, decode_audio, encode_wav
from bot.wiring import Services
from core.errors import BadInput
from core.subtitles import to_srt, to_vtt
from core.types import Job, VoiceEngine

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


def voice_dir(services: Services, name: str) -> Path:
    return services.settings.data_dir / "voices" / name


async def add_voice(services: Services, name: str, files: list[tuple[str, Source]], transcripts: list[str | None] | None = None,
                    *, engine: VoiceEngine = VoiceEngine.LITE, notify_chat: str | None = None, max_steps: int = 0,
                    gpu: int | None = None) -> AddedVoice:
    """Every clip is checked before anything is written, so a bad file leaves no half-made voice behind."""
    if not _NAME.match(name):
        raise BadInput("A voice name may use letters, digits, '-' and '_' (up to 64).")
    if not files:
        raise BadInput("Send at least one recording of the voice.")
    transcripts = list(transcripts or [None] * len(files))
    # off the event loop, each clip bounded: a reference recording longer than this is not a clip
    decoded = [await asyncio.to_thread(decode_audio, data, max_seconds=MAX_CLIP_SECONDS) for _, data in files]
    if engine is not VoiceEngine.TTS:
        # silent, clipped, music or several speakers: refused here, before anything is stored or trained
        from RVC.reference import check_reference

        await asyncio.to_thread(check_reference, decoded)
    language = None if services.settings.language == "auto" else services.settings.language
    texts = []
    for audio, given in zip(decoded, transcripts):
        if given and given.strip():
            texts.append((given.strip(), "given", [(0.0, audio.seconds, given.strip())]))
        else:
            transcript = await services.recognizer.transcribe(audio, language)
            texts.append((transcript.text, "asr", list(transcript.segments)))

    folder = voice_dir(services, name)
    folder.mkdir(parents=True, exist_ok=True)
    existing = len(list(folder.glob("clip-*.wav")))
    made: list[tuple[str, str, str]] = []
    entries = []
    for i, (audio, (text, source, segments)) in enumerate(zip(decoded, texts)):
        path = folder / f"clip-{existing + i:03d}.wav"
        path.write_bytes(encode_wav(audio))
        _write_transcript_files(path, text, segments)
        entries.append((path, audio.seconds, text, source))
        made.append((path.name, text, source))

    ready = engine is VoiceEngine.TTS
    if name not in await services.voices.names():
        await services.voices.upsert(name, engine, language or "en", ready=ready, params={"dir": str(folder)})
    for path, seconds, text, source in entries:
        await services.voices.add_clip(name, str(path), seconds, text, source)
    job = None
    if not ready:
        await services.voices.set_ready(name, False)
        job = await services.jobs.submit("voice", name, engine=engine.value, max_steps=max_steps, gpu=gpu,
                                         params={"dir": str(folder)}, notify_chat=notify_chat)
    return AddedVoice(name, made, sum(e[1] for e in entries), job)
