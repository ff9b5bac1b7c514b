"""The reply pipeline: (audio →) transcript → LLM with history → sentences → speech → voice → (video).

A run is an async generator of frames. Sentences are spoken while the model is still writing, so the
first audio leaves long before the last sentence exists.
"""
from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, AsyncGenerator, AsyncIterator, Sequence

from core import audio as audio_ops
from core.errors import AnswerCut, AudioTooLong, BadInput, DoppelError, EngineError, NoSpeech, TextTooLong, VoiceNotReady
from core.languages import AnswerLanguage, choose_language, english_name, persona_prompt, plan_answer, rivals, surest
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
    Voice,
    VoiceEngine,
)


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
    video: bool = True  # False: end at speech (live talk draws the face itself while it speaks)
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

    async def run(self, request: ReplyRequest) -> AsyncGenerator[Frame, None]:
        watch = Stopwatch()
        voice = await self._resolve_voice(request) if request.speak else None

        user_text, language = await self._user_text(request, watch)
        if request.audio is not None:
            yield TranscriptFrame(Transcript(user_text, language, request.audio.seconds))
        plan = plan_answer(language, request.persona, self.config.model_languages)
        answer_language = plan.answer
        synthesizer = self._synthesizer_for(answer_language) if request.speak else None

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
        try:
            index = 0
            while True:
                item = await sentences.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                answer.append(item)
                yield SentenceFrame(index, item)
                if synthesizer is not None:
                    chunk, note = await self._speak(item, answer_language, synthesizer, voice, watch)
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
                index += 1
        finally:
            if not producer.done():
                producer.cancel()
                await asyncio.gather(producer, return_exceptions=True)

        text = _join_sentences(answer)
        if not text:
            raise EngineError("The language model gave an empty answer. Please try again.")
        yield SpeechDone(text)
        avatar = request.avatar or request.persona.avatar
        if request.video and spoken and avatar and self.renderer is not None and await self.renderer.is_ready(avatar):
            whole = audio_ops.join(spoken)
            async with watch.stage("avatar"):
                mp4 = await self.renderer.render(whole, avatar, text)
            yield VideoFrame(mp4, whole.seconds)
        # both turns are stored together only once the reply is whole: a failed or cancelled run leaves no trace
        if request.remember:
            await self.history.append_exchange(request.key, user_text, text)
        watch.mark("total")
        yield ReplyDone(text, tuple(_summarize(watch)), user_language=language, language=answer_language,
                        notice_given=bool(notice))

    async def speak(self, request: ReplyRequest) -> AsyncGenerator[AudioFrame, None]:
        """Say `request.text` itself in the request's voice (a /say command): the speech stages without the LLM,
        so a voice sounds the same here as in a reply. Nothing is stored in the history."""
        watch = Stopwatch()
        voice = await self._resolve_voice(request)
        language = await self._text_language(request.text or "", request)
        synthesizer = self._synthesizer_for(language)
        splitter = SentenceSplitter(self.config.splitter)
        for index, sentence in enumerate(splitter.feed(request.text or "") + splitter.flush()):
            chunk, _ = await self._speak(sentence, language, synthesizer, voice, watch)  # a fallback is logged by the converter
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
            # speech in a language nobody expects here: say so rather than answer a transcript of noise
            names = ", ".join(english_name(code) for code in self.config.languages)
            raise BadInput(f"That sounded like {english_name(max(scores, key=lambda code: scores[code]))}; here I understand {names}.")
        # detection is unsure of short clips: then the close languages are decoded too, and the surest transcript wins
        contenders = (heard, *rivals(scores, heard, self.config.languages))
        decoded = {expected: transcript} if expected in contenders else {}
        for code in contenders:
            if code not in decoded:
                decoded[code] = await self.recognizer.transcribe(audio, code)
        return decoded[surest(decoded, scores, self.config.languages)]

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
                speech = await converter.convert(speech, voice)
        note = speech.note if isinstance(speech, FallbackAudio) else ""
        return audio_ops.match_loudness(speech), note

    async def _resolve_voice(self, request: ReplyRequest) -> Voice | None:
        name = request.voice or request.persona.voice
        if not name or self.voices is None:
            return None
        voice = await self.voices.get(name)
        if not voice.ready:
            raise VoiceNotReady(name)
        return voice

    def _synthesizer_for(self, language: str) -> SpeechSynthesizer:
        for synthesizer in self.synthesizers:
            if synthesizer.supports(language):
                return synthesizer
        raise EngineError(f"No speech synthesizer here speaks '{language}'.")


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
