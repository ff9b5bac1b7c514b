"""A live spoken conversation: listening, partial transcripts, answers spoken as they are made, barge-in.

The channel hands over the person's audio as it arrives (16 kHz mono) and gives a `Speaker` that plays
answer audio; everything else is here, whatever carries the media (WebRTC on the web page). Answers come
from the same pipeline as every other channel, through `Dialogue`, and share the channel's reply slots.

An answer starts being made at the first short pause, while the end-of-utterance timeout still runs, and is
held until the timeout confirms the person has finished (dropped unseen if they go on): the timeout's wait
overlaps the answer's making instead of adding to it.

When the person starts speaking while an answer is being spoken, the speaker is stopped at once, the rest of
the answer is cancelled, and the history keeps what was actually heard. If they start speaking again before
any of the answer was heard (a pause mid-sentence), the answer is dropped and both parts become one utterance.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

from adapters.vad_stream import CHUNK, RATE, SileroStream
from bot.common.dialogue import Dialogue, Incoming
from bot.common.slots import ReplySlots, busy_note
from core.errors import DoppelError, NoSpeech
from core.heard import heard_answer
from core.ports import FaceStream
from core.turn_taking import NotSpeech, Paused, Resumed, SpeechStarted, TurnConfig, TurnTaker, Utterance
from core.types import Audio, AudioFrame, ReplyDone, SentenceFrame, TranscriptFrame

if TYPE_CHECKING:
    from bot.wiring import Services

log = logging.getLogger(__name__)

Emit = Callable[[str, dict], None]  # an event for the page: its name and JSON-able data


class Spoken(Protocol):
    """One sentence's audio handed to a speaker; `fraction` is the share of it sent so far."""

    @property
    def fraction(self) -> float: ...


class Speaker(Protocol):
    """Where a live answer is spoken (the session's outgoing tracks)."""

    def say(self, audio: Audio) -> Spoken:
        """Queue after what is already queued; returns a handle that counts what of it was sent."""
        ...

    def stop(self) -> None:
        """Silence now: drop everything queued, and stop the face."""
        ...

    @property
    def busy(self) -> bool: ...

    async def finished(self) -> None:
        """Returns when everything queued has been sent."""
        ...


@dataclass(frozen=True)
class LiveConfig:
    turns: TurnConfig = field(default_factory=TurnConfig)
    partial_seconds: float = 1.0  # at most one partial transcript this often; 0: none
    min_partial_seconds: float = 0.6  # a turn shorter than this is not worth a partial transcript


@dataclass(eq=False)
class _Answer:
    """One answer in the making: what the person said, each sentence and how much of its audio was sent.

    An answer begun at a pause is held: its events and audio wait until the end-of-utterance timeout confirms
    that the person has finished, and it is dropped unseen if they go on speaking.
    """

    utterance: np.ndarray
    carried: np.ndarray | None = None  # an earlier utterance it continues (see LiveConversation._speech_started)
    said: str = ""
    sentences: list[str] = field(default_factory=list)
    spoken: list[Spoken] = field(default_factory=list)
    settled: bool = False  # stored (whole, or cut as heard) or given up
    held: bool = False
    later: list[Callable[[], None]] = field(default_factory=list)  # what waits for the release
    released: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def heard_anything(self) -> bool:
        return any(s.fraction > 0 for s in self.spoken)

    def heard(self) -> str:
        return heard_answer(self.sentences[: len(self.spoken)], [s.fraction for s in self.spoken])


class LiveConversation:
    def __init__(self, dialogue: Dialogue, person: Incoming, speaker: Speaker, emit: Emit, slots: ReplySlots,
                 config: LiveConfig | None = None) -> None:
        self.dialogue = dialogue
        self.person = person  # who is talking: user, chat and display name (no audio, no text)
        self.speaker = speaker
        self.emit = emit
        self.slots = slots
        self.config = config or LiveConfig()
        self.turns = TurnTaker(self.config.turns)
        self._vad = SileroStream()
        self._rest = np.zeros(0, dtype=np.float32)  # samples short of a whole VAD chunk
        self._answer: _Answer | None = None
        self._task: asyncio.Task | None = None
        self._carried: np.ndarray | None = None  # an utterance whose answer was dropped before it was heard
        self._storing: asyncio.Task | None = None  # an interrupted answer being stored as heard
        self._partial: asyncio.Task | None = None
        self._partial_due = 0.0
        self._language = "en"
        self._closed = False

    async def start(self) -> None:
        """Reads the chat's settings once: partial transcripts are made in its language."""
        request = await self.dialogue.request_for(self.person, speak=False)
        self._language = request.language or request.last_language or (
            request.persona.language if request.persona.language != "auto" else "en")

    @property
    def answering(self) -> bool:
        return (self._task is not None and not self._task.done()) or self.speaker.busy

    def hear(self, samples: np.ndarray) -> None:
        """The person's audio as it arrives: 16 kHz mono float32, any length."""
        if self._closed:
            return
        data = np.concatenate([self._rest, samples.astype(np.float32, copy=False)])
        whole = len(data) - len(data) % CHUNK
        self._rest = data[whole:]
        for start in range(0, whole, CHUNK):
            chunk = data[start:start + CHUNK]
            for event in self.turns.feed(chunk, self._vad.probability(chunk)):
                if isinstance(event, SpeechStarted):
                    self._speech_started()
                elif isinstance(event, Paused):
                    self._begin(event.samples, held=True)
                elif isinstance(event, Resumed):
                    self._drop_held()
                elif isinstance(event, Utterance):
                    self._utterance(event)
                elif isinstance(event, NotSpeech):
                    self._drop_held()
                    self.emit("listening", {})
        self._maybe_partial()

    def _speech_started(self) -> None:
        self.emit("speech", {})
        if self.speaker.busy:
            self.speaker.stop()  # first, before anything else: whatever is being said goes quiet now
        answer, task = self._answer, self._task
        if answer is None or answer.settled:
            return
        if answer.heard_anything:
            self._cancel(task)
            # the next answer waits for this one to be stored, so it reads the history with it
            self._task = self._storing = asyncio.create_task(self._store_heard(answer, after=task))
        elif task is not None and not task.done():
            # nothing of the answer was heard yet: the person was not done, so what they said before goes on
            self._cancel(task)
            answer.settled = True
            self._carried = self._with_carried(answer.carried, answer.utterance)
            self.emit("interrupted", {"heard": ""})

    def _utterance(self, utterance: Utterance) -> None:
        held = self._answer
        if held is not None and held.held and not held.settled and len(held.utterance) == len(utterance.samples):
            # the pause was the end: the answer made meanwhile goes out now
            held.held = False
            for step in held.later:
                step()
            held.later.clear()
            held.released.set()
            return
        self._drop_held()
        self._begin(utterance.samples, held=False)

    def _begin(self, samples: np.ndarray, *, held: bool) -> None:
        carried, self._carried = self._carried, None
        answer = _Answer(utterance=samples, carried=carried, held=held)
        if not held:
            answer.released.set()
        previous = self._task
        self._answer = answer
        self._task = asyncio.create_task(self._reply(answer, previous))

    def _drop_held(self) -> None:
        answer = self._answer
        if answer is not None and answer.held and not answer.settled:
            log.debug("the person went on after a pause: the answer begun there is dropped")
            answer.settled = True
            self._cancel(self._task)
            self._carried = answer.carried  # still to be said together with what comes next

    @staticmethod
    def _with_carried(carried: np.ndarray | None, samples: np.ndarray) -> np.ndarray:
        if carried is None:
            return samples
        return np.concatenate([carried, np.zeros(RATE // 5, dtype=np.float32), samples])

    @staticmethod
    def _cancel(task: asyncio.Task | None) -> None:
        if task is not None and not task.done():
            task.cancel()

    def _tell(self, answer: _Answer, event: str, data: dict) -> None:
        """An event about this answer for the page; kept back while the answer is held."""
        if answer.held:
            answer.later.append(lambda: self.emit(event, data))
        else:
            self.emit(event, data)

    async def _store_heard(self, answer: _Answer, after: asyncio.Task | None = None) -> None:
        if after is not None:
            await asyncio.gather(after, return_exceptions=True)
        if answer.settled:
            return
        answer.settled = True
        heard = answer.heard()
        self.emit("interrupted", {"heard": heard})
        try:
            await self.dialogue.remember_heard(self.person, answer.said, heard)
        except Exception:
            log.exception("could not store a live exchange")

    async def _reply(self, answer: _Answer, previous: asyncio.Task | None) -> None:
        if previous is not None:  # the last answer's history is written before this one reads it
            await asyncio.gather(previous, return_exceptions=True)
        audio = Audio(self._with_carried(answer.carried, answer.utterance), RATE)
        try:
            ticket = self.slots.join()
        except DoppelError as exc:
            self._tell(answer, "failed", {"code": exc.code, "message": exc.message})
            answer.settled = True
            return
        try:
            async for place in ticket.places():
                self._tell(answer, "queued", {"place": place, "message": busy_note(place)})
            self._tell(answer, "thinking", {})
            async with aclosing(self.dialogue.reply(self.person, audio=audio, live=True)) as frames:
                async for frame in frames:
                    if answer.held:
                        answer.later.append(functools.partial(self._show, answer, frame))
                    else:
                        self._show(answer, frame)
        except NoSpeech:
            answer.settled = True
            self._tell(answer, "listening", {"message": "I did not catch that."})
            return
        except DoppelError as exc:
            answer.settled = True
            log.info("live answer failed: %s (%s)", exc.code, exc.detail)
            self._tell(answer, "failed", {"code": exc.code, "message": exc.message})
            return
        finally:
            ticket.leave()
        await answer.released.wait()
        await self.speaker.finished()
        if not answer.settled:
            answer.settled = True
            await self.dialogue.remember_heard(self.person, answer.said, " ".join(answer.sentences))
            self.emit("listening", {})

    def _show(self, answer: _Answer, frame: object) -> None:
        if isinstance(frame, TranscriptFrame):
            answer.said = frame.transcript.text
            self.emit("transcript", {"text": frame.transcript.text, "language": frame.transcript.language})
        elif isinstance(frame, SentenceFrame):
            answer.sentences.append(frame.text)
            self.emit("sentence", {"index": frame.index, "text": frame.text})
        elif isinstance(frame, AudioFrame):
            answer.spoken.append(self.speaker.say(frame.audio))
            if len(answer.spoken) == 1:
                self.emit("speaking", {})
        elif isinstance(frame, ReplyDone):
            self.emit("done", {"text": frame.text, "timings": {t.stage: round(t.seconds, 3) for t in frame.timings}})

    def _maybe_partial(self) -> None:
        cfg = self.config
        if not cfg.partial_seconds or not self.turns.speaking or self.answering:
            return
        if self._partial is not None and not self._partial.done():
            return
        # a pause may be the end of the utterance: the final transcript must not wait behind a partial one
        if self.turns.silence_seconds > cfg.turns.end_seconds / 3:
            return
        now = asyncio.get_running_loop().time()
        if now < self._partial_due:
            return
        heard = self.turns.heard_so_far()
        if len(heard) < cfg.min_partial_seconds * RATE:
            return
        self._partial_due = now + cfg.partial_seconds
        self._partial = asyncio.create_task(self._transcribe_partial(heard))

    async def _transcribe_partial(self, samples: np.ndarray) -> None:
        try:
            transcript = await self.dialogue.services.recognizer.transcribe(Audio(samples, RATE), self._language)
        except NoSpeech:
            return
        except Exception:
            log.exception("partial transcript failed")
            return
        if transcript.text.strip() and self.turns.speaking and not self._closed:
            self.emit("partial", {"text": transcript.text.strip()})

    async def close(self) -> None:
        """Stops listening and answering; an answer cut by the close is stored as far as it was heard."""
        self._closed = True
        self.speaker.stop()
        tasks = [t for t in (self._task, self._partial) if t is not None and not t.done() and t is not self._storing]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *(t for t in (self._storing,) if t is not None), return_exceptions=True)
        if self._answer is not None and not self._answer.settled and self._answer.heard_anything:
            await self._store_heard(self._answer)


async def live_face(services: Services, avatar: str) -> FaceStream | None:
    """The avatar's face drawn as it speaks, sharing the loaded engine; None when this server has no renderer or its
    renderer draws no live faces. Raises a DoppelError saying why when this avatar cannot talk live."""
    if services.renderer is None:
        return None
    return await services.renderer.face_stream(avatar, size=services.settings.avatar_live_size)
