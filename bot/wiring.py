"""The composition root: the one place that reads settings and decides which engines the pipeline gets."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.personas import PersonaBook
from bot.settings import Settings
from core.errors import BadInput
from core.languages import UnknownLanguage, is_known
from core.pipeline import PipelineConfig, ReplyPipeline
from core.ports import AvatarRenderer, ChatModel, LanguageDetector, SpeechRecognizer, SpeechSynthesizer, VoiceConverter
from core.types import VoiceEngine
from storage.db import create_engine, session_factory, upgrade
from storage.history import HistoryRepository
from storage.jobs import JobRepository
from storage.users import ChatSettingsRepository, UserRepository
from storage.voices import VoiceRepository


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    history: HistoryRepository
    voices: VoiceRepository
    jobs: JobRepository
    users: UserRepository
    chats: ChatSettingsRepository
    personas: PersonaBook
    recognizer: SpeechRecognizer
    chat_model: ChatModel
    synthesizers: list[SpeechSynthesizer]
    pipeline: ReplyPipeline
    converters: dict[VoiceEngine, VoiceConverter] = field(default_factory=dict)
    renderer: AvatarRenderer | None = None
    owned_engines: Engines | None = None  # built for these services alone, so closed with them

    async def close(self) -> None:
        await self.engine.dispose()
        if self.owned_engines is not None:
            await self.owned_engines.close()


def build_recognizer(settings: Settings) -> SpeechRecognizer:
    from adapters.asr_whisper import MULTILINGUAL, Decoding, WhisperRecognizer
    from adapters.whisper_models import english_tiny_dir, multilingual_base_dir

    multi = (lambda: multilingual_base_dir(settings.cache_dir)) if settings.asr_multilingual else None
    return WhisperRecognizer(english_tiny_dir(), multi, threads=settings.threads, english=Decoding(beam_size=settings.asr_beam_size),
                             multilingual=replace(MULTILINGUAL, beam_size=settings.asr_multilingual_beam_size))


def build_synthesizers(settings: Settings) -> list[SpeechSynthesizer]:
    from adapters.tts_espeak import EspeakSynthesizer
    from adapters.tts_mandarin import MandarinSynthesizer
    from adapters.tts_pico import PicoSynthesizer
    from adapters.tts_piper import PiperSynthesizer, bundled_voice

    model, config = bundled_voice()
    # the first that speaks a language speaks it: Piper for English, the neural Mandarin voice, Pico for French,
    # Spanish, German and Italian, eSpeak NG for the rest (bench/language.py measures each by what Whisper hears)
    return [PiperSynthesizer(model, config, threads=settings.threads), MandarinSynthesizer(threads=settings.threads),
            PicoSynthesizer(), EspeakSynthesizer()]


def build_text_languages(settings: Settings) -> LanguageDetector:
    from adapters.lang_text import LinguaDetector

    return LinguaDetector(settings.languages)


def model_languages(settings: Settings) -> tuple[str, ...] | None:
    """What the configured chat model writes well (DOPPEL_LLM_LANGUAGES); None: any language."""
    if settings.llm_languages:
        return tuple(settings.llm_languages)
    if settings.llm_provider.strip().lower() == "local" and not settings.llm_model and settings.local_model_path is None:
        return ("en",)  # the bundled SmolLM2-135M: asked in Italian or Russian, it answers in English or gibberish
    return None


def check_language_settings(settings: Settings) -> None:
    """Refuses, in one line naming the setting, a language code that nothing here knows."""
    for code in settings.languages:
        if not is_known(code):
            raise UnknownLanguage(code, "DOPPEL_LANGUAGES")
    for code in settings.llm_languages:
        if not is_known(code):
            raise UnknownLanguage(code, "DOPPEL_LLM_LANGUAGES")
    language = settings.language.strip().lower()
    if language != "auto" and not is_known(language):
        raise UnknownLanguage(settings.language, "DOPPEL_LANGUAGE")
    if language != "auto" and settings.languages and language not in settings.languages:
        raise BadInput(f"DOPPEL_LANGUAGE: '{language}' is not among DOPPEL_LANGUAGES ({', '.join(settings.languages)}).")


def build_chat_model(settings: Settings) -> ChatModel:
    """The configured provider, then the fallbacks in order ("zhipu", "gemini:gemini-2.5-pro", "local" ...),
    behind one model that adds timeouts, retries and the configured temperature and max tokens."""
    from adapters.llm_resilience import ResilientChatModel, RetryPolicy
    from core.types import LLMOptions

    def provider(entry: str, model: str) -> ChatModel:
        kind, _, named = entry.strip().partition(":")
        model, kind = named or model, kind.lower()
        if kind == "local":
            from pathlib import Path

            from adapters.llm_local import LocalChatModel, bundled_gguf

            # for the local provider a "model" is the path of a GGUF file
            return LocalChatModel(Path(model) if model else settings.local_model_path or bundled_gguf(), threads=settings.threads)
        if kind == "openai":
            from adapters.llm_openai import OpenAIChatModel

            return OpenAIChatModel(model, base_url=settings.openai_base_url, api_key=settings.openai_api_key.get_secret_value(),
                                   timeout=settings.llm_timeout)
        if kind == "zhipu":
            from adapters.llm_zhipu import ZhipuChatModel

            return ZhipuChatModel(model, base_url=settings.zhipu_base_url, api_key=settings.zhipu_api_key.get_secret_value(),
                                  timeout=settings.llm_timeout)
        if kind == "gemini":
            from adapters.llm_gemini import GeminiChatModel

            return GeminiChatModel(model, base_url=settings.gemini_base_url, api_key=settings.gemini_api_key.get_secret_value())
        raise ValueError(f"Unknown language model provider '{entry}': use local, openai, zhipu or gemini")

    chain = [provider(settings.llm_provider, settings.llm_model)]
    chain += [provider(entry, "") for entry in settings.llm_fallback]
    keys = [k.get_secret_value() for k in (settings.openai_api_key, settings.zhipu_api_key, settings.gemini_api_key)]
    return ResilientChatModel(
        chain, RetryPolicy(retries=settings.llm_retries, timeout=settings.llm_timeout),
        defaults=LLMOptions(temperature=settings.llm_temperature, max_tokens=settings.llm_max_tokens), secrets=keys,
    )


def build_converters(settings: Settings) -> dict[VoiceEngine, VoiceConverter]:
    from RVC.converters import build_converters as voice_converters

    return voice_converters(settings)


def build_renderer(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> AvatarRenderer | None:
    """Avatars live in the database (which engine, ready or not), so the renderer is built with it, per Services."""
    from geneface.docker_engine import engine_from_settings
    from geneface.renderer import AvatarStudio
    from storage.avatars import AvatarRepository

    avatars = AvatarRepository(sessions)
    studio = AvatarStudio(avatars, gpu=settings.avatar_gpu, subtitles=settings.avatar_subtitles,
                          geneface=engine_from_settings(settings))
    if settings.engines == "ray":
        from deploy.cluster import ray_renderer

        return ray_renderer(settings, avatars, studio)
    return studio


@dataclass
class Engines:
    """The loaded models. Built once per process and shared by everything that answers."""

    recognizer: SpeechRecognizer
    chat_model: ChatModel
    synthesizers: list[SpeechSynthesizer]
    converters: dict[VoiceEngine, VoiceConverter]
    renderer: AvatarRenderer | None
    text_languages: LanguageDetector | None = None

    async def close(self) -> None:
        """Lets go of what the engines hold open: the LLM's HTTP connections, the voice worker's process or container."""
        await self.chat_model.aclose()
        for converter in {id(c): c for c in self.converters.values()}.values():  # one worker serves several engines
            await converter.close()


def build_engines(settings: Settings) -> Engines:
    if settings.engines == "ray":  # the same ports, served by Ray Serve deployments (deploy/)
        from deploy.cluster import ray_engines

        return ray_engines(settings)
    return Engines(
        recognizer=build_recognizer(settings), chat_model=build_chat_model(settings),
        synthesizers=build_synthesizers(settings), converters=build_converters(settings), renderer=None,
        text_languages=build_text_languages(settings),
    )


async def build_services(settings: Settings | None = None, *, engines: Engines | None = None, migrate: bool = True) -> Services:
    settings = settings or Settings()
    check_language_settings(settings)
    personas = PersonaBook(settings.personas_dir)  # a broken persona file stops the start, naming the file
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.db_url)
    if migrate:
        await upgrade(engine)
    sessions = session_factory(engine)
    history = HistoryRepository(sessions)
    voices = VoiceRepository(sessions)
    owned: Engines | None = None
    if engines is None:
        engines = owned = build_engines(settings)
    recognizer, chat_model, synthesizers = engines.recognizer, engines.chat_model, engines.synthesizers
    converters, renderer = engines.converters, engines.renderer or build_renderer(settings, sessions)
    pipeline = ReplyPipeline(
        recognizer=recognizer, chat_model=chat_model, synthesizers=synthesizers, history=history, voices=voices,
        converters=converters, renderer=renderer, text_languages=engines.text_languages or build_text_languages(settings),
        config=PipelineConfig(max_input_seconds=settings.max_input_seconds, history_token_budget=settings.history_token_budget,
                              max_input_chars=settings.max_text_chars,
                              languages=tuple(settings.languages), model_languages=model_languages(settings)),
    )
    return Services(
        settings=settings, engine=engine, sessions=sessions, history=history, voices=voices, jobs=JobRepository(sessions),
        users=UserRepository(sessions), chats=ChatSettingsRepository(sessions), personas=personas,
        recognizer=recognizer, chat_model=chat_model, synthesizers=synthesizers, pipeline=pipeline,
        converters=converters, renderer=renderer, owned_engines=owned,
    )
