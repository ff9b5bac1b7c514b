"""The composition root: the one place that reads settings and decides which engines the pipeline gets."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from adapters.engines import Engines, build_chat_model, build_recognizer, build_synthesizers, build_text_languages
from adapters.settings import Settings
from bot.personas import PersonaBook
from core.errors import BadInput
from core.languages import UnknownLanguage, is_known
from core.pipeline import PipelineConfig, ReplyPipeline
from core.ports import AvatarRenderer, ChatModel, SpeechRecognizer, SpeechSynthesizer, VoiceConverter
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
    # the engines' warm-up while a channel already takes messages (bot/common/warmup.py): answers wait for it
    warming: asyncio.Task | None = None

    async def close(self) -> None:
        await self.engine.dispose()
        if self.owned_engines is not None:
            await self.owned_engines.close()


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
    for code in settings.text_languages:
        if not is_known(code):
            raise UnknownLanguage(code, "DOPPEL_TEXT_LANGUAGES")
    for code in settings.llm_languages:
        if not is_known(code):
            raise UnknownLanguage(code, "DOPPEL_LLM_LANGUAGES")
    language = settings.language.strip().lower()
    if language != "auto" and not is_known(language):
        raise UnknownLanguage(settings.language, "DOPPEL_LANGUAGE")
    if language != "auto" and settings.languages and language not in settings.heard_languages:
        raise BadInput(f"DOPPEL_LANGUAGE: '{language}' is not among DOPPEL_LANGUAGES ({', '.join(settings.languages)}).")


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
                              languages=tuple(settings.heard_languages), model_languages=model_languages(settings)),
    )
    return Services(
        settings=settings, engine=engine, sessions=sessions, history=history, voices=voices, jobs=JobRepository(sessions),
        users=UserRepository(sessions), chats=ChatSettingsRepository(sessions), personas=personas,
        recognizer=recognizer, chat_model=chat_model, synthesizers=synthesizers, pipeline=pipeline,
        converters=converters, renderer=renderer, owned_engines=owned,
    )
