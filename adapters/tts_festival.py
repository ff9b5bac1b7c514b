"""Festival (Debian's `festival` with its `festvox-*` voices): Russian (`festvox-ru`); its Italian voices
(`festvox-italp16k`, `festvox-itapc16k`) are only compared with Pico by bench/language.py.

Festival runs as a separate program, so one long-lived `festival --pipe` process serves every sentence: starting
it and loading the Russian unit-selection voice takes about 0.8 s a time, a sentence in a running process about
0.1 s. It reads Scheme commands on stdin and, line-buffered by `stdbuf`, answers each with a marker we print
after it; each sentence is written to a WAV file in a private folder and read back.
"""
from __future__ import annotations

import asyncio
import logging
import re
import shutil
import subprocess
import tempfile
import threading
import wave
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from core.errors import EngineError
from core.types import Audio

# doppel language code → (Festival voice, the Debian package that ships it)
VOICES = {"ru": ("msu_ru_nsh_clunits", "festvox-ru"), "it": ("lp_diphone", "festvox-italp16k")}
# the Italian diphone voices read ISO-8859-1 (UTF-8 "è" matches no letter-to-sound rule and the sentence is lost);
# the Russian voice reads UTF-8
ENCODINGS = {"lp_diphone": "latin-1", "pc_diphone": "latin-1"}
# a letter-to-sound rule that matches nothing ("\\", "<") loses the whole sentence, so only words, spaces and
# the punctuation that shapes a sentence's melody reach Festival
_UNSPOKEN = re.compile(r"[^\w\s.,!?;:'()-]|_")
_LOOSE_MARKS = re.compile(r"(?:^|\s+)([^\w\s]+)(?=\s|$)")  # " ?" is read as a word that no rule matches either
_DONE = "@@doppel-festival-done@@"
log = logging.getLogger("doppel.festival")


def missing_packages(languages: tuple[str, ...] = tuple(VOICES)) -> list[str]:
    """The Debian packages this machine lacks to speak `languages` (festival itself first)."""
    missing = [] if shutil.which("festival") and shutil.which("stdbuf") else ["festival"]
    for language in languages:
        voice, package = VOICES[language]
        if not any(Path(root).glob(f"*/{voice}")
                   for root in ("/usr/share/festival/voices", "/usr/local/share/festival/voices")):
            missing.append(package)
    return missing


def _scheme_string(text: str) -> str:
    """`text` as a Scheme string literal: quotes and backslashes escaped, line breaks made spaces."""
    flat = " ".join(text.split())
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


class FestivalSynthesizer:
    def __init__(self, languages: tuple[str, ...] = ("ru",), voices: Mapping[str, str] | None = None) -> None:
        self.languages = languages
        self.voices = {code: VOICES[code][0] for code in languages} | dict(voices or {})
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._voice = ""
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def supports(self, language: str) -> bool:
        return language.split("-")[0].lower() in self.languages

    def _start(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            missing = missing_packages(self.languages)
            if missing:
                raise EngineError(f"Festival speech needs the Debian package(s) {', '.join(missing)}: "
                                  f"run `make festival` (or apt-get install {' '.join(missing)}).")
            self._folder = self._folder or tempfile.TemporaryDirectory(prefix="doppel-festival-")
            self._process = subprocess.Popen(["stdbuf", "-oL", "festival", "--pipe"], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self._voice = ""
        return self._process

    def _command(self, process: subprocess.Popen[bytes], command: str, encoding: str = "utf-8") -> str:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(f'{command}\n(format t "{_DONE}\\n")\n'.encode(encoding, errors="replace"))
        process.stdin.flush()
        said: list[str] = []
        for line in process.stdout:
            text = line.decode(encoding, errors="replace")
            if _DONE in text:
                return "".join(said)
            said.append(text)
        raise EngineError(detail=f"festival stopped: {''.join(said)[-300:]}")

    def warm_up(self) -> None:
        """Starts Festival and loads its voices; where a package is missing this says which, and the bot still
        starts (those languages' answers then fail with the same message)."""
        missing = missing_packages(self.languages)
        if missing:
            log.warning("Festival speech needs the Debian package(s) %s: run `make festival`", ", ".join(missing))
            return
        for language in self.languages:
            self.synthesize_sync("Да." if language == "ru" else "Sì.", language)

    async def synthesize(self, text: str, language: str) -> Audio:
        return await asyncio.to_thread(self.synthesize_sync, text, language)

    def synthesize_sync(self, text: str, language: str) -> Audio:
        voice = self.voices[language.split("-")[0].lower()]
        encoding = ENCODINGS.get(voice, "utf-8")
        text = "".join(ch if ch.encode(encoding, errors="ignore") else " " for ch in _UNSPOKEN.sub(" ", text))
        text = _LOOSE_MARKS.sub(r"\1", text)
        if not any(ch.isalnum() for ch in text):
            return Audio(np.zeros(0, np.float32), 16000)
        with self._lock:  # one process, one sentence at a time
            process = self._start()
            assert self._folder is not None
            out = Path(self._folder.name) / "sentence.wav"
            out.unlink(missing_ok=True)
            try:
                if voice != self._voice:
                    self._command(process, f"(voice_{voice})")
                    self._voice = voice
                said = self._command(process, f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(text)})) "
                                              f"{_scheme_string(str(out))} 'riff)", encoding)
            except (BrokenPipeError, EngineError):
                self.close()
                raise
            if not out.exists():
                raise EngineError(detail=f"festival wrote no audio for {text[:60]!r}: {said[-300:]}")
            with wave.open(str(out)) as wav:
                rate, frames = wav.getframerate(), wav.readframes(wav.getnframes())
        return Audio(np.frombuffer(frames, np.int16).astype(np.float32) / 32768.0, rate)

    def close(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
