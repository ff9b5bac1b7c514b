"""Speech recognition with faster-whisper (CTranslate2) on the bundled models, with Silero VAD trimming.

Decoding is at temperature 0 only: faster-whisper's default falls back to sampling at rising temperatures when
a decode looks poor, which made one clip come out three ways on three tries. The same clip now gives the same
transcript every time.
"""
from __future__ import annotations

import asyncio
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from adapters.media import ASR_RATE, resample
from core.errors import NoSpeech
from core.types import Audio, Transcript

# Whisper base writes Chinese in traditional characters unless its context shows simplified ones: always given
SCRIPT_PROMPTS = {"zh": "以下是普通话的句子。"}
# a plain sentence of the language as the decoder's context, for decodings that ask for one (Decoding.prompt);
# only where it was measured to help (bench/results/language-asr.txt)
LANGUAGE_PROMPTS = {"fr": "Bonjour, voici un message en français.", "es": "Hola, este es un mensaje en español."}


@dataclass(frozen=True)
class Decoding:
    """How Whisper decodes a recording, always at temperature 0 so that a clip gives the same text every time."""

    beam_size: int = 1
    without_timestamps: bool = False  # text tokens only: no time tokens between the words
    prompt: bool = False  # start from a sentence in the language (LANGUAGE_PROMPTS)

    def describe(self) -> str:
        parts = ["greedy" if self.beam_size == 1 else f"beam {self.beam_size}"]
        parts += ["no timestamps"] * self.without_timestamps + ["prompt"] * self.prompt
        return ", ".join(parts)

    def initial_prompt(self, language: str | None) -> str | None:
        language = language or ""
        return SCRIPT_PROMPTS.get(language) or (LANGUAGE_PROMPTS.get(language) if self.prompt else None)


# every language but English, by default. Measured side by side on 57 French and 59 Spanish clips
# (bench/results/language-asr.txt): the best of the settings tried on both, 20 % / 17 % fewer errors than greedy
# with the language known, for 1.1x its CPU; timestamps stay, subtitles need them
MULTILINGUAL = Decoding(beam_size=5, prompt=True)


class WhisperRecognizer:
    """tiny.en for English (fast), multilingual base for other languages and for detection.

    Models load on first use and stay loaded; calls are serialized per model because the
    2-core target machine gains nothing from running two decodes at once.
    """

    def __init__(self, english_dir: Path | None, multilingual_dir: Path | Callable[[], Path] | None, *, threads: int = 2,
                 english: Decoding = Decoding(), multilingual: Decoding = Decoding(), vad: bool = True) -> None:
        if english_dir is None and multilingual_dir is None:
            raise ValueError("at least one Whisper model is needed")
        self.dirs = {"en": english_dir, "multi": multilingual_dir}
        self.threads = threads
        self.english = english  # tiny.en
        self.multilingual = multilingual  # base, every other language
        self.vad = vad
        self._models: dict[str, object] = {}
        self._locks = {"en": threading.Lock(), "multi": threading.Lock()}
        self._load_lock = threading.Lock()

    def _model(self, which: str):
        with self._load_lock:
            if which not in self._models:
                from faster_whisper import WhisperModel

                where = self.dirs[which]
                # the multilingual model may be given as a function: it is joined from two wheels on first use
                path = where() if callable(where) else where
                self._models[which] = WhisperModel(str(path), device="cpu", compute_type="int8",
                                                   cpu_threads=self.threads)
            return self._models[which]

    def warm_up(self) -> None:
        for which, path in self.dirs.items():
            if path is not None:
                self._model(which)

    def _pick(self, language: str | None) -> str:
        if language == "en" and self.dirs["en"] is not None:
            return "en"
        if self.dirs["multi"] is not None:
            return "multi"
        return "en"

    async def transcribe(self, audio: Audio, language: str | None = None) -> Transcript:
        return await asyncio.to_thread(self.transcribe_sync, audio, language)

    def language_probability(self, audio: Audio, language: str) -> float | None:
        """How likely the multilingual model finds it that `audio` is in `language`; None without that model.

        The English-only model writes English whatever it hears (a French clip came back as "Thank you for
        watching!" with an average log-probability of -0.8), so it can't tell by itself that it did not follow.
        """
        if not self.detects_language:
            return None
        try:
            samples = self._speech(audio)
        except NoSpeech:
            return 0.0
        model = self._model("multi")
        with self._locks["multi"]:
            _, _, probabilities = model.detect_language(samples)
        return float(dict(probabilities).get(language, 0.0))

    def _speech(self, audio: Audio) -> np.ndarray:
        samples = resample(audio, ASR_RATE).samples
        if self.vad:
            samples = speech_only(samples)
            if samples.size < ASR_RATE // 5:
                raise NoSpeech()
        return samples

    @property
    def detects_language(self) -> bool:
        return self.dirs["multi"] is not None

    async def detect_language(self, audio: Audio) -> dict[str, float]:
        return await asyncio.to_thread(self.detect_language_sync, audio)

    def detect_language_sync(self, audio: Audio) -> dict[str, float]:
        """Probabilities of each language Whisper knows, from the first 30 s of speech (multilingual model)."""
        if not self.detects_language:
            return {"en": 1.0}
        samples = self._speech(audio)
        model = self._model("multi")
        with self._locks["multi"]:
            _, _, probabilities = model.detect_language(samples)
        return dict(probabilities)

    def transcribe_sync(self, audio: Audio, language: str | None = None) -> Transcript:
        samples = self._speech(audio)
        which = self._pick(language)
        model = self._model(which)
        decoding = self.english if which == "en" else self.multilingual
        with self._locks[which]:
            segments, info = model.transcribe(
                samples, language=("en" if which == "en" else language), temperature=0.0, beam_size=decoding.beam_size,
                initial_prompt=decoding.initial_prompt(language), vad_filter=False, condition_on_previous_text=False,
                without_timestamps=decoding.without_timestamps,
            )
            decoded = list(segments)
        segs = tuple((s.start, s.end, s.text.strip()) for s in decoded)
        text = " ".join(s[2] for s in segs if s[2]).strip()
        tokens = sum(len(s.tokens) for s in decoded)
        mean_logprob = sum(s.avg_logprob * len(s.tokens) for s in decoded) / tokens if tokens else -math.inf
        # weighted by each segment's length, so one short unsure word does not decide for a long clip
        weights = [max(s.end - s.start, 1e-3) for s in decoded]
        logprob = float(np.average([s.avg_logprob for s in decoded], weights=weights)) if decoded else None
        no_speech = float(np.average([s.no_speech_prob for s in decoded], weights=weights)) if decoded else None
        return Transcript(text=text, language=info.language, audio_seconds=audio.seconds, segments=segs,
                          confidence=math.exp(mean_logprob), avg_logprob=logprob, no_speech_prob=no_speech)


def speech_only(samples: np.ndarray, pad_s: float = 0.25) -> np.ndarray:
    """Cut leading/trailing silence with Silero VAD (the ONNX model faster-whisper ships); empty if no speech."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    spans = get_speech_timestamps(samples, VadOptions(min_silence_duration_ms=300, speech_pad_ms=int(pad_s * 1000)))
    if not spans:
        return samples[:0]
    return samples[spans[0]["start"]: spans[-1]["end"]]
