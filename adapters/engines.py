"""The engines a process loads once and shares with everything that answers, built from the settings.

Below both the bots' wiring (bot/wiring.py composes them into a pipeline) and deploy/ (each Ray replica builds
the one engine it serves with these same factories), so neither reaches up into the other.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from adapters.settings import Settings
from core.ports import AvatarRenderer, ChatModel, LanguageDetector, SpeechRecognizer, SpeechSynthesizer, VoiceConverter
from core.types import VoiceEngine


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


def build_recognizer(settings: Settings) -> SpeechRecognizer:
    from adapters.asr_whisper import MULTILINGUAL, Decoding, WhisperRecognizer
    from adapters.whisper_models import english_tiny_dir, multilingual_base_dir

    multi = (lambda: multilingual_base_dir(settings.cache_dir)) if settings.asr_multilingual else None
    return WhisperRecognizer(english_tiny_dir(), multi, threads=settings.threads, english=Decoding(beam_size=settings.asr_beam_size),
                             multilingual=replace(MULTILINGUAL, beam_size=settings.asr_multilingual_beam_size))


def build_synthesizers(settings: Settings) -> list[SpeechSynthesizer]:
    from adapters.tts_festival import FestivalSynthesizer
    from adapters.tts_mandarin import MandarinSynthesizer
    from adapters.tts_pico import PicoSynthesizer
    from adapters.tts_piper import PiperSynthesizer, bundled_voice

    model, config = bundled_voice()
    # the first that speaks a language speaks it: Piper for English, the neural Mandarin voice, Pico for French,
    # Spanish, German and Italian, Festival for Russian. bench/language.py --part voices measures each by what
    # Whisper hears; eSpeak NG, which spoke the rest, read back far over the 15 % bound (Russian 164 %, Portuguese
    # 62 % WER), so a language none of these speaks is answered in text, with a notice (core.languages.cannot_speak)
    return [PiperSynthesizer(model, config, threads=settings.threads), MandarinSynthesizer(threads=settings.threads),
            PicoSynthesizer(), FestivalSynthesizer(("ru",))]


def build_text_languages(settings: Settings) -> LanguageDetector:
    from adapters.lang_text import LinguaDetector

    return LinguaDetector(settings.heard_languages)


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
