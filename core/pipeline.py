"""The reply pipeline: (audio →) transcript → LLM with history → sentences → speech → voice → (video).

A run is an async generator of frames. Sentences are spoken while the model is still writing, so the
first audio leaves long before the last sentence exists.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, AsyncGenerator, AsyncIterator, Sequence

from core import audio as audio_ops
from core.errors import (AnswerCut, AudioTooLong, BadInput, DoppelError, EngineError, NoSpeech, TextTooLong, UnknownVoice,
                         VoiceNotReady)
from core.languages import (AnswerLanguage, cannot_speak, choose_language, english_name, looping, persona_prompt, plan_answer,
                            rivals, surest)
from core.ports import (AvatarRenderer, ChatModel, HistoryStore, LanguageDetector, SpeechRecognizer, SpeechSynthesizer,
                        VoiceCatalog, VoiceConverter)
from core.speakable import spoken_form
from core.splitter import SentenceSplitter, SplitterConfig
from core.tokens import MESSAGE_OVERHEAD, token_bound
from core.types import (
    Audio,
    AudioFrame,
    ChatMessage,
    ConversationKey,
    FallbackAudio,
    Frame,
    LLMOptions,
    NoteFrame,
    Persona,
    ReplyDone,
    SentenceFrame,
    SpeechDone,
    StageTiming,
    Transcript,
    TranscriptFrame,
    VideoFrame,
    VideoPartFrame,
    Voice,
    VoiceEngine,
)


log = logging.getLogger("doppel.pipeline")


class _VoiceFailed(Exception):
    """The voice's converter failed on a sentence: that sentence, and the rest of the answer, go out in the base
    voice (`speech`) with `note` saying so."""

    def __init__(self, speech: Audio, note: str, error: DoppelError) -> None:
        super().__init__(note)
        self.speech, self.note, self.error = speech, note, error


@dataclass(frozen=True)
class ReplyRequest:
    key: ConversationKey
    persona: Persona
    audio: Audio | None = None
    text: str | None = None
    voice: str | None = None  # None: the persona's voice, else the base synthesizer
    avatar: str | None = None
    language: str | None = None  # the user's language (their /language or the deployment's); None: detect
    speak: bool = True
    last_language: str | None = None  # what this user spoke last time: breaks near-ties in detection
    noticed: frozenset[str] = frozenset()  # languages this chat was already told the model cannot write
    unspoken_noticed: frozenset[str] = frozenset()  # languages this chat was already told no voice here speaks
    video: bool = True  # False: end at speech (live talk draws the face itself while it speaks)
    # True: the face comes a sentence at a time (VideoPartFrame, each drawn while the next sentence is spoken)
    # instead of once for the whole answer after the last sentence
    video_parts: bool = False
    # False: the caller stores the exchange as it was heard (live talk cuts an answer where the person interrupted)
    remember: bool = True


@dataclass(frozen=True)
class PipelineConfig:
    max_input_seconds: float = 120.0
    history_token_budget: int = 1200
    max_input_chars: int = 2000  # a typed message longer than this is refused
    splitter: SplitterConfig = field(default_factory=SplitterConfig)
    # a converted voice's first piece may be a clause of at least this many characters (0: whole sentences):
    # conversion costs time per piece, so a shorter first piece is heard sooner (bench/latency.py --demo-voice)
    converted_first_clause: int = 24
    languages: tuple[str, ...] = ()  # the languages users here are expected to speak; empty: any
    # what the chat model writes well, in order of preference; None: any language
    model_languages: tuple[str, ...] | None = None
    # a transcript in the expected language below this confidence is checked against the other languages
    # (tiny.en writes "Thank you for watching!" for French speech, at a mean word probability under 0.4; on the
    # shared clips English scored 0.49 and up, Spanish up to 0.50)
    recheck_confidence: float = 0.55


class Stopwatch:
    """Collects per-stage durations for one run; the pipeline, not each engine, does the measuring."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.timings: list[StageTiming] = []

    def mark(self, stage: str, since: float | None = None) -> None:
        self.timings.append(StageTiming(stage, time.perf_counter() - (self.start if since is None else since)))

    @asynccontextmanager
    async def stage(self, name: str) -> AsyncIterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings.append(StageTiming(name, time.perf_counter() - t0))

    def total(self, stage: str) -> float:
        return sum(t.seconds for t in self.timings if t.stage == stage)


_END = object()
_SENTENCE_ENDS = (".", "!", "?", "\u2026", "\u3002", "\uff01", "\uff1f", '"', "\u201d", ")")


class ReplyPipeline:
    def __init__(
        self,
        recognizer: SpeechRecognizer,
        chat_model: ChatModel,
        synthesizers: Sequence[SpeechSynthesizer],
        history: HistoryStore,
        voices: VoiceCatalog | None = None,
        converters: dict[VoiceEngine, VoiceConverter] | None = None,
        renderer: AvatarRenderer | None = None,
        config: PipelineConfig | None = None,
        text_languages: LanguageDetector | None = None,
    ) -> None:
        self.recognizer = recognizer
        self.chat_model = chat_model
        self.synthesizers = list(synthesizers)
        self.history = history
        self.voices = voices
        self.converters = converters or {}
        self.renderer = renderer
        self.config = config or PipelineConfig()
        self.text_languages = text_languages
        self._told: set[tuple[str, str]] = set()  # (voice, problem) already logged for the admin

    async def run(self, request: ReplyRequest) -> AsyncGenerator[Frame, None]:
        watch = Stopwatch()
        voice, unusable = await self._usable_voice(request) if request.speak else (None, "")

        user_text, language = await self._user_text(request, watch)
        if request.audio is not None:
            yield TranscriptFrame(Transcript(user_text, language, request.audio.seconds))
        if unusable:
            yield NoteFrame(unusable)
        plan = plan_answer(language, request.persona, self.config.model_languages)
        answer_language = plan.answer
        synthesizer = self._voice_for(answer_language) if request.speak else None
        # no voice here speaks it understandably: the answer comes as text, and the chat is told so once
        unspoken = cannot_speak(answer_language) if request.speak and synthesizer is None \
            and answer_language not in request.unspoken_noticed else ""
        if unspoken:
            yield NoteFrame(unspoken)

        messages = await self._messages(request, user_text, plan)
        notice = plan.notice if plan.user not in request.noticed else ""
        sentences: asyncio.Queue[Any] = asyncio.Queue()
        if notice:
            await sentences.put(notice)  # said once per chat, before the answer, in the answer's voice
        converted = voice is not None and voice.engine is not VoiceEngine.TTS
        splitter = replace(self.config.splitter, first_clause_chars=self.config.converted_first_clause) if converted \
            else self.config.splitter
        producer = asyncio.create_task(self._write_answer(messages, request.persona, sentences, watch, splitter))
        spoken: list[Audio] = []
        answer: list[str] = []
        noted = False  # a fallback's note is shown once per answer, however many sentences needed it
        avatar = request.avatar or request.persona.avatar
        parts: _VideoParts | None = None
        if request.video_parts and self.renderer is not None and avatar and await self._will_draw(request, avatar):
            parts = _VideoParts(self.renderer, avatar)
        getter: asyncio.Future[Any] | None = None
        item: Any = None
        try:
            index = 0
            while True:
                if parts is None:
                    item = await sentences.get()
                else:  # a sentence's face goes out as soon as it is drawn, while the next is still being spoken
                    getter = asyncio.ensure_future(sentences.get())
                    async for part in parts.until(getter):
                        yield part
                    item = getter.result()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                answer.append(item)
                yield SentenceFrame(index, item)
                if synthesizer is not None:
                    try:
                        chunk, note = await self._speak(item, answer_language, synthesizer, voice, watch)
                    except _VoiceFailed as failed:  # its files are broken: the rest of this answer in the base voice
                        voice = None
                        chunk, note = audio_ops.match_loudness(failed.speech), failed.note
                    if not chunk.samples.size:  # a piece with nothing to say ("...", a dash): no audio to send
                        index += 1
                        continue
                    if not spoken:
                        watch.mark("first_audio")
                    spoken.append(chunk)
                    if note and not noted:
                        noted = True
                        yield NoteFrame(note)
                    yield AudioFrame(index, item, chunk)
                    if parts is not None:
                        parts.add(index, chunk, item)
                index += 1
        finally:
            if getter is not None and not getter.done():
                getter.cancel()
            if not producer.done():
                producer.cancel()
                await asyncio.gather(producer, return_exceptions=True)
            if parts is not None and item is not _END:  # failed or left: nobody will see the faces still drawn
                await parts.close()

        text = _join_sentences(answer)
        if not text:
            raise EngineError("The language model gave an empty answer. Please try again.")
        yield SpeechDone(text)
        if parts is not None:
            try:
                async with watch.stage("avatar"):
                    async for part in parts.until(None):
                        yield part
                if parts.failures and not parts.shown:  # no face at all: said, now that the voice is out
                    raise parts.failures[0]
            finally:
                await parts.close()
        elif spoken and self.renderer is not None and avatar and await self._will_draw(request, avatar):
            whole = audio_ops.join(spoken)
            async with watch.stage("avatar"):
                mp4 = await self.renderer.render(whole, avatar, text)
            yield VideoFrame(mp4, whole.seconds)
        # both turns are stored together only once the reply is whole: a failed or cancelled run leaves no trace
        if request.remember:
            await self.history.append_exchange(request.key, user_text, text)
        watch.mark("total")
        yield ReplyDone(text, tuple(_summarize(watch)), user_language=language, language=answer_language,
                        notice_given=bool(notice), unspoken_notice_given=bool(unspoken))

    async def _will_draw(self, request: ReplyRequest, avatar: str | None) -> bool:
        return bool(request.video and request.speak and avatar and self.renderer is not None
                    and await self.renderer.is_ready(avatar))

    async def speak(self, request: ReplyRequest) -> AsyncGenerator[AudioFrame, None]:
        """Say `request.text` itself in the request's voice (a /say command): the speech stages without the LLM,
        so a voice sounds the same here as in a reply. Nothing is stored in the history."""
        watch = Stopwatch()
        voice = await self._resolve_voice(request)
        language = await self._text_language(request.text or "", request)
        synthesizer = self._voice_for(language)
        if synthesizer is None:
            raise BadInput(cannot_speak(language))
        splitter = SentenceSplitter(self.config.splitter)
        for index, sentence in enumerate(splitter.feed(request.text or "") + splitter.flush()):
            try:
                chunk, _ = await self._speak(sentence, language, synthesizer, voice, watch)  # a fallback is logged by the converter
            except _VoiceFailed as failed:  # asked for this voice by name: its failure is the answer
                raise failed.error from None
            yield AudioFrame(index, sentence, chunk)

    async def _user_text(self, request: ReplyRequest, watch: Stopwatch) -> tuple[str, str]:
        """What the user said and in which language (see core.languages.choose_language)."""
        if request.audio is None:
            text = (request.text or "").strip()
            if not text:
                raise NoSpeech("Please send a message with some words in it.")
            if len(text) > self.config.max_input_chars:
                raise TextTooLong(len(text), self.config.max_input_chars)
            return text, await self._text_language(text, request)
        if request.audio.seconds > self.config.max_input_seconds:
            raise AudioTooLong(request.audio.seconds, self.config.max_input_seconds)
        async with watch.stage("asr"):
            transcript = await self._transcribe(request)
        if not transcript.text.strip():
            raise NoSpeech()
        return transcript.text.strip(), transcript.language

    async def _transcribe(self, request: ReplyRequest) -> Transcript:
        """In the user's language when one is set, unless its transcript is doubtful and the speech sounds more
        like another expected language; otherwise in the language detected among the expected ones."""
        audio, expected = request.audio, request.language
        assert audio is not None
        if expected:
            transcript = await self.recognizer.transcribe(audio, expected)
            if transcript.confidence >= self.config.recheck_confidence:
                return transcript
        scores = await self.recognizer.detect_language(audio)
        # the expected language has been put in doubt by its own transcript: the best expected language wins
        heard = choose_language(scores, allowed=self.config.languages, last=request.last_language,
                                default=expected or (request.persona.language if request.persona.language != "auto" else "en"))
        if scores and self.config.languages and sum(scores.get(code, 0.0) for code in self.config.languages) < 0.05:
            # a short clip in the chat's own language can sound like another: a 3-s Spanish one held 4.9 % of
            # detection's belief on the expected languages (Hindi 0.73), a hair under the bound. Decoded in the chat's
            # last language, it is heard as surely as speech (0.70) where speech in another language is not (0.38)
            last = request.last_language
            if last and last in self.config.languages:
                transcript = await self.recognizer.transcribe(audio, last)
                if transcript.confidence >= self.config.recheck_confidence and not looping(transcript.text):
                    return transcript
            # speech in a language nobody expects here: say so rather than answer a transcript of noise
            names = ", ".join(english_name(code) for code in self.config.languages)
            raise BadInput(f"That sounded like {english_name(max(scores, key=lambda code: scores[code]))}; here I understand {names}.")
        # detection is unsure of short clips: then the close languages are decoded too, and the surest transcript wins
        contenders = (heard, *rivals(scores, heard, self.config.languages))
        last = request.last_language
        if len(contenders) > 1 and last and last not in contenders and (not self.config.languages or last in self.config.languages):
            contenders += (last,)  # unsure: what this chat spoke last is decoded too, and breaks a near-tie
        decoded = {expected: transcript} if expected in contenders else {}
        for code in contenders:
            if code not in decoded:
                decoded[code] = await self.recognizer.transcribe(audio, code)
        return decoded[surest(decoded, scores, self.config.languages, last=request.last_language)]

    async def _text_language(self, text: str, request: ReplyRequest) -> str:
        scores = {}
        if self.text_languages is not None:  # off the event loop: the first call loads the detector's models
            scores = await asyncio.to_thread(self.text_languages.scores, text, self.config.languages)
        return choose_language(scores, allowed=self.config.languages, fixed=request.language, last=request.last_language,
                               default=request.persona.language if request.persona.language != "auto" else "en")

    async def _messages(self, request: ReplyRequest, user_text: str, plan: AnswerLanguage | None = None) -> list[ChatMessage]:
        language = plan.answer if plan else (request.language or request.persona.language)
        system = persona_prompt(request.persona, "en" if language == "auto" else language)
        past = await self.history.load(request.key, self.history_budget(request.persona, user_text, system))
        return [ChatMessage("system", system), *past, ChatMessage("user", user_text)]

    def history_budget(self, persona: Persona, user_text: str, system: str | None = None) -> int:
        """The configured budget, cut so that prompt + history + the longest answer fit the model's context."""
        budget = self.config.history_token_budget
        context = self.chat_model.context_tokens
        if context:
            prompt = token_bound(persona.system_prompt if system is None else system) + token_bound(user_text)
            fixed = prompt + 2 * MESSAGE_OVERHEAD + persona.max_tokens
            budget = min(budget, context - fixed)
        return max(0, budget)

    async def _write_answer(self, messages: list[ChatMessage], persona: Persona, out: asyncio.Queue[Any], watch: Stopwatch,
                            config: SplitterConfig) -> None:
        splitter = SentenceSplitter(config)
        options = LLMOptions(max_tokens=persona.max_tokens)
        t0 = time.perf_counter()
        count = 0
        first_token = True
        try:
            async for piece in self.chat_model.stream(messages, options):
                if first_token:
                    watch.mark("llm_first_token", t0)
                    first_token = False
                for sentence in splitter.feed(piece):
                    count = await self._emit(sentence, count, out, watch, t0)
                    if count - splitter.clauses >= persona.max_sentences:
                        return  # a spoken answer stays short; the rest would never be heard (a first clause is no sentence)
            for sentence in splitter.flush():
                count = await self._emit(sentence, count, out, watch, t0)
                if count - splitter.clauses >= persona.max_sentences:
                    return
        except AnswerCut as exc:
            if not exc.at_limit:
                await out.put(exc)  # cut off mid-answer: it must be neither spoken on nor stored as if whole
            else:
                # stopped at its token limit: whole sentences stand, the unfinished last one is dropped, unless it
                # is all there is, and then it goes out marked as unfinished
                rest = splitter.flush()
                tail = rest.pop() if rest and not rest[-1].rstrip().endswith(_SENTENCE_ENDS) else ""
                for sentence in rest:
                    if count - splitter.clauses < persona.max_sentences:
                        count = await self._emit(sentence, count, out, watch, t0)
                if count == 0 and tail.strip(" .,;:"):
                    await self._emit(tail.rstrip(" .,;:") + "\u2026", count, out, watch, t0)
        except DoppelError as exc:
            await out.put(exc)
        except Exception as exc:  # an engine's own error: wrap it so the user gets a clear message
            await out.put(EngineError(detail=repr(exc)))
        finally:
            watch.mark("llm", t0)
            await out.put(_END)

    @staticmethod
    async def _emit(sentence: str, count: int, out: asyncio.Queue[Any], watch: Stopwatch, t0: float) -> int:
        if count == 0:
            watch.mark("llm_first_sentence", t0)
        await out.put(sentence)
        return count + 1

    async def _speak(self, text: str, language: str, synthesizer: SpeechSynthesizer, voice: Voice | None,
                     watch: Stopwatch) -> tuple[Audio, str]:
        """The sentence's audio, and a note when the converter fell back to the base voice ("" otherwise)."""
        async with watch.stage("tts"):
            speech = await synthesizer.synthesize(spoken_form(text), language)
        if voice is not None and voice.engine is not VoiceEngine.TTS and speech.samples.size:
            converter = self.converters.get(voice.engine)
            if converter is None:
                raise EngineError(f"The voice engine '{voice.engine.value}' is not available on this server.")
            async with watch.stage("convert"):
                try:
                    speech = await converter.convert(speech, voice)
                except DoppelError as exc:
                    self._tell_admin(voice.name, "failed", exc.message + (f" ({exc.detail})" if exc.detail else ""))
                    raise _VoiceFailed(speech, f"The voice '{voice.name}' could not be used ({exc.message.rstrip('.')}), "
                                               "so this answer is in the standard voice. An admin should check it.",
                                      exc) from exc
        note = speech.note if isinstance(speech, FallbackAudio) else ""
        return audio_ops.match_loudness(speech), note

    async def _usable_voice(self, request: ReplyRequest) -> tuple[Voice | None, str]:
        """The request's voice, or None and a note for the user when it cannot speak yet: a voice that does not
        exist (a chat's choice since deleted, a DOPPEL_VOICE mistyped) or is still training must not stop every
        answer; they go out in the standard voice, and the admin reads why in the log, once."""
        try:
            return await self._resolve_voice(request), ""
        except UnknownVoice as exc:
            self._tell_admin(exc.voice, "unknown", "there is no such voice")
            return None, f"There is no voice called '{exc.voice}', so I answer in the standard voice."
        except VoiceNotReady:
            name = request.voice or request.persona.voice or ""
            self._tell_admin(name, "training", "it is not ready (still training, or its training failed)")
            return None, f"The voice '{name}' is not ready yet, so I answer in the standard voice until it is."

    def _tell_admin(self, voice: str, problem: str, why: str) -> None:
        if (voice, problem) not in self._told:
            self._told.add((voice, problem))
            log.warning("voice %r cannot be used: %s; answering in the standard voice", voice, why)

    async def _resolve_voice(self, request: ReplyRequest) -> Voice | None:
        name = request.voice or request.persona.voice
        if not name or self.voices is None:
            return None
        voice = await self.voices.get(name)
        if not voice.ready:
            raise VoiceNotReady(name)
        return voice

    def _voice_for(self, language: str) -> SpeechSynthesizer | None:
        """The first synthesizer that speaks `language` understandably (bench/language.py --part voices); None: none."""
        return next((s for s in self.synthesizers if s.supports(language)), None)


def _join_sentences(sentences: list[str]) -> str:
    out = ""
    for s in sentences:
        out = s if not out else (out + s if "\u3000" <= out[-1] <= "\u9fff" else out + " " + s)
    return out


def _summarize(watch: Stopwatch) -> list[StageTiming]:
    """One figure per stage: single marks as they are, repeated stages (tts, convert) summed."""
    seen: dict[str, float] = {}
    order: list[str] = []
    for t in watch.timings:
        if t.stage not in seen:
            order.append(t.stage)
            seen[t.stage] = 0.0
        seen[t.stage] += t.seconds
    return [StageTiming(s, seen[s]) for s in order]


FIRST_PART_SECONDS = 1.0


class _VideoParts:
    """Each spoken sentence's face, drawn one after another in the order spoken (so parts share the CPU with the
    next sentence's speech rather than with each other), and handed out in that order as each is done."""

    def __init__(self, renderer: AvatarRenderer, avatar: str) -> None:
        self.renderer = renderer
        self.avatar = avatar
        self.pending: deque[tuple[int, float, float, asyncio.Task[bytes]]] = deque()
        self._last: asyncio.Task[bytes] | None = None
        self.failures: list[DoppelError] = []
        self.shown = 0

    def add(self, index: int, audio: Audio, text: str) -> None:
        # the answer's first second is drawn as a part of its own: the face then starts about as long after the
        # voice as a second of it takes to draw, however long the first sentence is
        cut = int(FIRST_PART_SECONDS * audio.sample_rate)
        if self._last is None and len(audio.samples) > 1.5 * cut:
            self._add(index, Audio(audio.samples[:cut], audio.sample_rate), "", 0.0)
            self._add(index, Audio(audio.samples[cut:], audio.sample_rate), text, cut / audio.sample_rate)
        else:
            self._add(index, audio, text, 0.0)

    def _add(self, index: int, audio: Audio, text: str, offset: float) -> None:
        before = self._last

        async def draw() -> bytes:
            if before is not None:
                await asyncio.gather(before, return_exceptions=True)
            return await self.renderer.render(audio, self.avatar, text)

        self._last = asyncio.create_task(draw())
        self.pending.append((index, offset, audio.seconds, self._last))

    async def until(self, waited: asyncio.Future[Any] | None) -> AsyncIterator[VideoPartFrame]:
        """The parts drawn before `waited` is done (which it then is); None: every part still to come."""
        while self.pending:
            index, offset, seconds, task = self.pending[0]
            if waited is not None and not task.done():
                await asyncio.wait({waited, task}, return_when=asyncio.FIRST_COMPLETED)
                if not task.done():
                    return
            self.pending.popleft()
            try:
                mp4 = await task
            except DoppelError as exc:  # a face that cannot be drawn costs its part, never the voice still to come
                self.failures.append(exc)
                continue
            self.shown += 1
            yield VideoPartFrame(index, mp4, seconds, offset)
        if waited is not None:
            await waited

    async def close(self) -> None:
        """Stop drawing what nobody will see (the answer failed or its reader left)."""
        tasks = [t for *_, t in self.pending]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.pending.clear()
