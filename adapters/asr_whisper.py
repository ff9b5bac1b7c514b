"""Speech recognition with faster-whisper (CTranslate2) on the bundled models, with Silero VAD trimming.

Decoding is at temperature 0 only: faster-whisper's default falls back to sampling at rising temperatures when
a decode looks poor, which made one clip come out three ways on three tries. The same clip now gives the same
transcript every time. A decode that repeats itself, writes more than anyone could say in the time or, from the
language prompt, is unsure, is tried again with fixed alternatives instead (Decoding.attempts), still at
temperature 0: a 0.5-s French "de" had come out as one sentence six times over.
"""
from __future__ import annotations

import asyncio
import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from adapters.media import ASR_RATE, resample
from core.errors import NoSpeech
from core.types import Audio, Transcript

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

# Whisper base writes Chinese in traditional characters unless its context shows simplified ones: always given
SCRIPT_PROMPTS = {"zh": "以下是普通话的句子。"}
# a plain sentence of the language as the decoder's context, for decodings that ask for one (Decoding.prompt):
# about as good as none on the bench's clips (bench/results/language-asr.txt), but without it beam 5 dropped the
# first 15 s of the 22-s French menu conf-adminmenu-menu8 of the shared clips
LANGUAGE_PROMPTS = {"fr": "Bonjour, voici un message en français.", "es": "Hola, este es un mensaje en español."}


@dataclass(frozen=True)
class Decoding:
    """How Whisper decodes a recording, always at temperature 0 so that a clip gives the same text every time."""

    beam_size: int = 1
    without_timestamps: bool = False  # text tokens only: no time tokens between the words
    prompt: bool = False  # start from a sentence in the language (LANGUAGE_PROMPTS)
    guard: bool = True  # a decode that made text up is tried again (attempts); off only to measure without it

    def describe(self) -> str:
        parts = ["greedy" if self.beam_size == 1 else f"beam {self.beam_size}"]
        parts += ["no timestamps"] * self.without_timestamps + ["prompt"] * self.prompt
        return ", ".join(parts + ["no guard"] * (not self.guard))

    def initial_prompt(self, language: str | None) -> str | None:
        language = language or ""
        return SCRIPT_PROMPTS.get(language) or (LANGUAGE_PROMPTS.get(language) if self.prompt else None)

    def attempts(self) -> tuple["Decoding", ...]:
        """This decoding, then the fixed ones tried in turn while a decode fails (_Decoded.failed): without the
        prompt (on a 1-s clip the model may write the prompt's own kind of sentence), then the other search
        (greedy for a beam, beam 5 for greedy), which rarely makes up the same text."""
        if not self.guard:
            return (self,)
        unprompted = replace(self, prompt=False)
        other = replace(unprompted, beam_size=5 if self.beam_size == 1 else 1)
        return tuple(dict.fromkeys((self, unprompted, other)))


# Whisper's own signs of a failed decode (its fallback thresholds): text this repetitive, or this unsure
MAX_COMPRESSION_RATIO = 2.4
MIN_AVG_LOGPROB = -1.0
# nobody says more letters than this in a second (the shared clips' fastest speaker: about 25), plus a margin
# for a word cut off at either end
MAX_LETTERS_PER_SECOND = 25
LETTERS_MARGIN = 10


def letters_limit(seconds: float) -> float:
    return LETTERS_MARGIN + MAX_LETTERS_PER_SECOND * seconds


def token_budget(seconds: float) -> int | None:
    """At most this many new tokens for `seconds` of speech: twice the letters it can hold, so a runaway decode of a
    short clip stops early but only once it has written more letters than that, and is still caught (a tighter
    bound let "S'il te plaît, c'est le fait que l" through for a 0.74-s word); None where Whisper's own limit of
    224 a 30-s window is as tight."""
    budget = int(2 * letters_limit(seconds))
    return budget if budget < 200 else None


@dataclass(frozen=True)
class _Decoded:
    segments: list[Any]  # faster_whisper's Segments
    language: str

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip()).strip()

    @property
    def avg_logprob(self) -> float | None:
        # weighted by each segment's length, so one short unsure word does not decide for a long clip
        if not self.segments:
            return None
        return float(np.average([s.avg_logprob for s in self.segments], weights=self._weights()))

    def _weights(self) -> list[float]:
        return [max(s.end - s.start, 1e-3) for s in self.segments]

    def hallucinated(self, seconds: float) -> bool:
        """Repeats itself, or writes more than `seconds` of speech can hold."""
        letters = sum(c.isalnum() for c in self.text)
        return (letters > letters_limit(seconds)
                or any(s.compression_ratio > MAX_COMPRESSION_RATIO for s in self.segments))

    def failed(self, seconds: float, prompted: bool) -> bool:
        """Made up, or, when decoded from a prompt, unsure: a short clip decoded without one is often unsure and
        right ("de" at -1.17), while from a prompt, unsure text was the prompt's sentence again."""
        unsure = self.avg_logprob is not None and self.avg_logprob < MIN_AVG_LOGPROB
        return self.hallucinated(seconds) or (prompted and unsure)

    def rank(self, seconds: float) -> tuple[bool, float]:
        """Among failed decodes: any that is not made up beats one that is, then the surer one."""
        return not self.hallucinated(seconds), self.avg_logprob if self.avg_logprob is not None else -math.inf


# every language but English, by default. Measured side by side on 57 French and 59 Spanish clips
# (bench/results/language-asr.txt): Spanish 19 % fewer errors than the better greedy baseline, French as good as
# greedy without a made-up sentence (its single words fare worse), for 1.1x the CPU; timestamps stay, subtitles
# need them
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
        self._models: dict[str, WhisperModel] = {}
        self._locks = {"en": threading.Lock(), "multi": threading.Lock()}
        self._load_lock = threading.Lock()

    def _model(self, which: str) -> WhisperModel:
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
        seconds = samples.size / ASR_RATE
        budget = token_budget(seconds) if decoding.guard else None
        chosen = None
        with self._locks[which]:
            for attempt in decoding.attempts():
                segments, info = model.transcribe(
                    samples, language=("en" if which == "en" else language), temperature=0.0,
                    beam_size=attempt.beam_size, initial_prompt=attempt.initial_prompt(language), vad_filter=False,
                    condition_on_previous_text=False, without_timestamps=attempt.without_timestamps,
                    max_new_tokens=budget,
                )
                decoded = _Decoded(list(segments), info.language)
                if not decoded.failed(seconds, prompted=attempt.prompt and (language or "") in LANGUAGE_PROMPTS):
                    chosen = decoded
                    break
                if chosen is None or decoded.rank(seconds) > chosen.rank(seconds):
                    chosen = decoded
        assert chosen is not None  # every decoding makes a first attempt
        return self._transcript(chosen, audio, made_up=decoding.guard and chosen.hallucinated(seconds))

    @staticmethod
    def _transcript(decoded: _Decoded, audio: Audio, made_up: bool) -> Transcript:
        segs = tuple((s.start, s.end, s.text.strip()) for s in decoded.segments)
        tokens = sum(len(s.tokens) for s in decoded.segments)
        mean_logprob = sum(s.avg_logprob * len(s.tokens) for s in decoded.segments) / tokens if tokens else -math.inf
        if made_up:
            # every attempt made text up (tiny.en loops "to be able to be able ..." at 0.84 on French speech):
            # none of it is to be trusted, so the language check and the choice between languages pass it over
            mean_logprob = -math.inf
        weights = decoded._weights()
        no_speech = float(np.average([s.no_speech_prob for s in decoded.segments], weights=weights)) if segs else None
        return Transcript(text=decoded.text, language=decoded.language, audio_seconds=audio.seconds, segments=segs,
                          confidence=math.exp(mean_logprob), avg_logprob=decoded.avg_logprob, no_speech_prob=no_speech)


def speech_only(samples: np.ndarray, pad_s: float = 0.25) -> np.ndarray:
    """Cut leading/trailing silence with Silero VAD (the ONNX model faster-whisper ships); empty if no speech."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    spans = get_speech_timestamps(samples, VadOptions(min_silence_duration_ms=300, speech_pad_ms=int(pad_s * 1000)))
    if not spans:
        return samples[:0]
    return samples[spans[0]["start"]: spans[-1]["end"]]
