"""Turn-taking in a live conversation: when the person starts speaking, and when they have finished.

Audio arrives in fixed chunks, each with the voice-activity detector's probability that it holds speech.
A few chunks of speech in a row start a turn (that is also what interrupts an answer being spoken); silence
for the end-of-utterance timeout ends it, and the turn's audio (with a little of what came just before the
start, so the first syllable is not clipped) is handed over as one utterance.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TurnConfig:
    sample_rate: int = 16_000
    threshold: float = 0.5  # speech probability that counts as speech
    start_seconds: float = 0.064  # speech this long in a row starts a turn
    end_seconds: float = 0.5  # silence this long ends it (the end-of-utterance timeout)
    # silence this long within a turn may be its end: the answer can start being made, held until end_seconds
    # confirm it (and dropped if the person goes on), so the timeout's wait is not added to the answer's time
    pause_seconds: float = 0.2
    min_speech_seconds: float = 0.25  # a turn with less speech than this was a noise, not an utterance
    pre_roll_seconds: float = 0.3  # kept from before the start
    max_seconds: float = 30.0  # a turn this long is handed over even while the person still speaks


@dataclass(frozen=True)
class SpeechStarted:
    """The person started speaking; `at` is the stream time (seconds) of the first speech chunk."""

    at: float


@dataclass(frozen=True)
class Utterance:
    """What the person said, from just before the start to the end of their last word."""

    samples: np.ndarray
    started: float  # stream time of the first speech chunk
    ended: float  # stream time just after the last speech chunk


@dataclass(frozen=True)
class Paused:
    """The person went quiet for `pause_seconds`: `samples` is what the utterance will be if they stay quiet."""

    samples: np.ndarray


@dataclass(frozen=True)
class Resumed:
    """They spoke again after a pause, within the same turn: what `Paused` offered is not the utterance."""


@dataclass(frozen=True)
class NotSpeech:
    """A turn that started but held too little speech to answer (a cough, a door)."""


TurnEvent = SpeechStarted | Paused | Resumed | Utterance | NotSpeech


class TurnTaker:
    def __init__(self, config: TurnConfig | None = None) -> None:
        self.config = config or TurnConfig()
        self._elapsed = 0  # samples seen in the whole stream
        self._before: deque[np.ndarray] = deque()  # recent silence, for the pre-roll
        self._before_samples = 0
        self._turn: list[np.ndarray] = []
        self._run = 0  # samples of speech in a row (before a start) or of silence in a row (during a turn)
        self._pending: list[np.ndarray] = []  # speech chunks not yet enough to start a turn
        self._speech = 0  # samples judged speech in this turn
        self._started_at = 0.0
        self._last_speech_end = 0.0
        self._paused = False

    @property
    def speaking(self) -> bool:
        return bool(self._turn)

    @property
    def silence_seconds(self) -> float:
        """How long the person has been quiet within the current turn."""
        return self._run / self.config.sample_rate if self._turn else 0.0

    def heard_so_far(self) -> np.ndarray:
        """The turn's audio until now (for a partial transcript); empty between turns."""
        return np.concatenate(self._turn) if self._turn else np.zeros(0, dtype=np.float32)

    def feed(self, chunk: np.ndarray, probability: float) -> list[TurnEvent]:
        cfg = self.config
        rate = cfg.sample_rate
        self._elapsed += len(chunk)
        end_time = self._elapsed / rate
        is_speech = probability >= cfg.threshold
        if not self._turn:
            if not is_speech:
                self._pending.clear()
                self._run = 0
                self._keep_before(chunk)
                return []
            self._pending.append(chunk)
            self._run += len(chunk)
            if self._run < cfg.start_seconds * rate:
                return []
            pending_samples = sum(len(c) for c in self._pending)
            self._started_at = end_time - pending_samples / rate
            self._turn = [*self._before, *self._pending]
            self._before.clear()
            self._before_samples = 0
            self._speech = pending_samples
            self._pending = []
            self._run = 0
            self._last_speech_end = end_time
            return [SpeechStarted(self._started_at)]
        self._turn.append(chunk)
        events: list[TurnEvent] = []
        if is_speech:
            self._speech += len(chunk)
            self._run = 0
            self._last_speech_end = end_time
            if self._paused:
                self._paused = False
                events.append(Resumed())
        else:
            self._run += len(chunk)
        if self._run >= cfg.end_seconds * rate or self._turn_samples() >= cfg.max_seconds * rate:
            return [*events, self._close()]
        if (not self._paused and cfg.pause_seconds < cfg.end_seconds and self._run >= cfg.pause_seconds * rate
                and self._speech >= cfg.min_speech_seconds * rate):
            self._paused = True
            events.append(Paused(self._said()))
        return events

    def _turn_samples(self) -> int:
        return sum(len(c) for c in self._turn)

    def _said(self) -> np.ndarray:
        """The turn's audio without the silence after the last word."""
        audio = np.concatenate(self._turn)
        return audio[: len(audio) - self._run] if self._run else audio

    def _close(self) -> TurnEvent:
        cfg = self.config
        audio = self._said()
        enough = self._speech >= cfg.min_speech_seconds * cfg.sample_rate
        event: TurnEvent = Utterance(audio, self._started_at, self._last_speech_end) if enough else NotSpeech()
        self._turn = []
        self._run = 0
        self._speech = 0
        self._paused = False
        return event

    def _keep_before(self, chunk: np.ndarray) -> None:
        self._before.append(chunk)
        self._before_samples += len(chunk)
        limit = self.config.pre_roll_seconds * self.config.sample_rate
        while self._before and self._before_samples - len(self._before[0]) >= limit:
            self._before_samples -= len(self._before.popleft())
