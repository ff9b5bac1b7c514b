"""Real speech for tests and benches: the Asterisk core sound prompts Debian ships (`make speech` installs them).

Professional voice artists (en and es: Allison Smith, the same speaker in both; fr: June Wallack) read each prompt,
and each package's `core-sounds-<lang>.txt` has what they said. The G.722 packages hold the 16 kHz recordings (the
WAV ones are telephone-band 8 kHz). Every clip with a transcript is turned once into what a chat app delivers, a
voice note (Opus in Ogg, mono, 32 kbit/s), kept in a cache outside the repository, and read from there.
Licence of the recordings: CC-BY-SA-3.0 (/usr/share/doc/asterisk-core-sounds-en/copyright).
"""
from __future__ import annotations

import gzip
import os
import tempfile
from functools import cache
from pathlib import Path

from core.types import Audio

# where Debian puts the recordings; another folder laid out alike can stand in (DOPPEL_SPEECH_SOUNDS)
SOUNDS = Path(os.environ.get("DOPPEL_SPEECH_SOUNDS", "/usr/share/asterisk/sounds"))
TRANSCRIPTS = Path(os.environ.get("DOPPEL_SPEECH_TRANSCRIPTS", "/usr/share/doc"))
CACHE = Path(os.environ.get("DOPPEL_SPEECH_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "doppel" / "speech")
VOICES = {"en": "en_US_f_Allison", "es": "es_MX_f_Allison", "fr": "fr_CA_f_June"}
G722_BYTES_PER_SECOND = 8000  # G.722 is 64 kbit/s whatever is said
BITRATE = 32_000


class SpeechMissing(RuntimeError):
    pass


def speech_clips(lang: str = "en", min_seconds: float = 0.0) -> list[tuple[Path, float, str]]:
    """(path of the voice note, seconds, what was said) of every prompt with a transcript, ordered by name."""
    return [(speech_clip(lang, name), seconds, text) for name, seconds, text in _catalogue(lang)
            if seconds >= min_seconds]


def speech_clip(lang: str, name: str) -> Path:
    """The voice note of one prompt, made on first use."""
    out = CACHE / lang / f"{name}.ogg"
    if not out.exists():
        from adapters.media import encode_ogg_opus

        audio = _decode_g722(_source(lang, name))
        out.parent.mkdir(parents=True, exist_ok=True)
        # written beside and renamed, so that a test run beside this one never reads half a file
        fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(encode_ogg_opus(audio, bitrate=BITRATE))
        os.replace(tmp, out)
    return out


def _decode_g722(path: Path) -> Audio:
    import av
    import numpy as np

    # raw G.722 has no header to recognise it by: the format is named
    with av.open(str(path), format="g722") as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16_000)
        parts = [out.to_ndarray().reshape(-1) for frame in container.decode(audio=0) for out in resampler.resample(frame)]
        parts += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return Audio(np.concatenate(parts).astype(np.float32), 16_000)


def _source(lang: str, name: str) -> Path:
    path = SOUNDS / VOICES[lang] / f"{name}.g722"
    if not path.exists():
        raise SpeechMissing(f"{path} is missing: run `make speech` (it installs Debian's "
                            f"asterisk-core-sounds-{lang}-g722 and asterisk-core-sounds-{lang})")
    return path


@cache
def _catalogue(lang: str) -> tuple[tuple[str, float, str], ...]:
    listing = TRANSCRIPTS / f"asterisk-core-sounds-{lang}" / f"core-sounds-{lang}.txt.gz"
    if not listing.exists():
        raise SpeechMissing(f"{listing} is missing: run `make speech` (it installs Debian's asterisk-core-sounds-{lang})")
    said: dict[str, str] = {}
    with gzip.open(listing, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            # "name: what was said", comments start with ";"; prompts in subfolders (digits/1 ...) are left out
            name, colon, text = line.partition(":")
            if line.startswith(";") or not colon or "/" in name:
                continue
            text = " ".join(text.split()).strip('"')
            if text:
                said[name.strip()] = text
    folder = SOUNDS / VOICES[lang]
    if not folder.is_dir():
        raise SpeechMissing(f"{folder} is missing: run `make speech` (it installs Debian's asterisk-core-sounds-{lang}-g722)")
    rows = [(name, round(_source(lang, name).stat().st_size / G722_BYTES_PER_SECOND, 2), said[name])
            for name in said if (folder / f"{name}.g722").exists()]
    # by file name, as a folder listing shows them ("spy-iax.ogg" before "spy-iax2.ogg")
    return tuple(sorted(rows, key=lambda row: f"{row[0]}.ogg"))


if __name__ == "__main__":
    # `make speech` makes every voice note ahead, so that no test run pays for it
    for language in VOICES:
        print(f"{language}: {len(speech_clips(language))} clips in {CACHE / language}")
