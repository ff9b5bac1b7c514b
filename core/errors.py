"""One family of errors. Each carries a stable code and a message a bot can show to a user as-is."""
from __future__ import annotations


class DoppelError(Exception):
    code = "error"
    default_message = "Something went wrong. Please try again."

    def __init__(self, message: str | None = None, *, detail: str | None = None) -> None:
        self.message = message or self.default_message
        # detail is for logs only; it never reaches a user
        self.detail = detail
        super().__init__(self.message)


class BadInput(DoppelError):
    code = "bad_input"
    default_message = "I could not use that input."


class EmptyAudio(BadInput):
    code = "empty_audio"
    default_message = "That file is empty. Please send a voice message."


class UnreadableAudio(BadInput):
    code = "unreadable_audio"
    default_message = "I could not read that audio. Please send a voice message, or an OGG, MP3, M4A, WAV or WebM file."


class AudioTooLong(BadInput):
    code = "audio_too_long"

    def __init__(self, seconds: float | None, limit: float) -> None:
        # None: the file states no length and decoding stopped at the limit
        said = f"is {seconds:.0f} s long; the limit is" if seconds is not None else "runs past the limit of"
        super().__init__(f"That recording {said} {limit:.0f} s. Please send a shorter one.")
        self.seconds = seconds
        self.limit = limit


class NoSpeech(BadInput):
    code = "no_speech"
    default_message = "I could not hear any speech in that recording."


class TextTooLong(BadInput):
    code = "text_too_long"

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"That message is {length} characters long; the limit is {limit}. Please send a shorter one.")
        self.length = length
        self.limit = limit


class FileTooLarge(BadInput):
    code = "file_too_large"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"That file is {size / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB.")


class UnknownUser(DoppelError):
    code = "unknown_user"
    default_message = "I don't know that user."


class UnknownVoice(DoppelError):
    code = "unknown_voice"

    def __init__(self, voice: str) -> None:
        super().__init__(f"There is no voice called '{voice}'. Use /voice to see the voices.")
        self.voice = voice


class VoiceNotReady(DoppelError):
    code = "voice_not_ready"

    def __init__(self, voice: str) -> None:
        super().__init__(f"The voice '{voice}' is still being trained. Please try again later.")


class UnknownAvatar(DoppelError):
    code = "unknown_avatar"
    default_message = "There is no such avatar."


class NotAllowed(DoppelError):
    code = "not_allowed"
    default_message = "Sorry, you are not allowed to do that."


class RateLimited(DoppelError):
    code = "rate_limited"

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"You are sending messages too fast. Please wait {retry_after:.0f} s.")
        self.retry_after = retry_after


class ProviderError(DoppelError):
    """A model provider (LLM, TTS, worker) failed in a way the user can be told about."""

    code = "provider_error"
    default_message = "The language model is not answering right now. Please try again in a moment."


class ProviderAuthError(ProviderError):
    code = "provider_auth"
    default_message = "The language model rejected the bot's API key. Please tell the bot's admin."


class ContentRefused(ProviderError):
    code = "content_refused"
    default_message = "The language model refused to answer that."


class AnswerCut(ProviderError):
    """The provider ended its answer unfinished: the stream stopped without a finish reason (cut off), or at the
    output token limit (`at_limit`), which is also how a thinking model that spent its budget on thought ends."""

    code = "answer_cut"
    default_message = "The language model's answer was cut off. Please try again."

    def __init__(self, message: str | None = None, *, detail: str | None = None, at_limit: bool = False) -> None:
        super().__init__(message, detail=detail)
        self.at_limit = at_limit


class EngineError(DoppelError):
    code = "engine_error"
    default_message = "An engine failed while making the reply."


class BadReference(BadInput):
    """Reference audio or video for a voice or avatar that cannot be trained on."""

    code = "bad_reference"


class JobNotFound(DoppelError):
    code = "job_not_found"
    default_message = "There is no such job."


class VoiceQualityTooLow(EngineError):
    """A trained voice scored below the quality gate (RVC/quality_gate.py); the message holds its scores."""

    code = "voice_quality_too_low"
    default_message = "The new voice did not pass the quality check, so it is not used."


class StartupError(DoppelError):
    """A setting that keeps doppel from starting, named with the docs page that explains it (bot/startup.py)."""

    code = "startup"

    def __init__(self, problem: str, *, setting: str, doc: str) -> None:
        # doc: the page that tells how to set it right, as a path from the repository root (a test checks it exists)
        super().__init__(f"{setting}: {problem} (see {doc})")
        self.setting = setting
        self.doc = doc
