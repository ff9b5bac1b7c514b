"""How a chat-model provider's failures become doppel errors, with API keys scrubbed from everything kept.

Every adapter turns its SDK's exceptions into one of: ProviderAuthError (bad or missing key), ContentRefused
(a safety block), ProviderUnavailable (worth retrying: 429, 5xx, timeouts, refused connections) or a plain
ProviderError. The SDK's exception is never chained to ours (adapters raise outside the `except` block):
its text may quote the server's answer, and a server may echo what it was sent. What is worth keeping goes,
redacted, into `.detail`.
"""
from __future__ import annotations

import email.utils
import time
from typing import Iterable, Mapping

from core.errors import AnswerCut, ContentRefused, ProviderAuthError, ProviderError

REDACTED = "***"


class ProviderUnavailable(ProviderError):
    """A transient failure: the same request may succeed a moment later."""

    code = "provider_unavailable"

    def __init__(self, message: str | None = None, *, detail: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, detail=detail)
        self.retry_after = retry_after


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:  # a tiny "secret" would blank out ordinary words
            text = text.replace(secret, REDACTED)
    return text


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, ProviderUnavailable)


def auth_error(provider: str, detail: str) -> ProviderAuthError:
    return ProviderAuthError(
        f"The {provider} language model rejected the bot's API key. Please tell the bot's admin to check it.",
        detail=detail,
    )


def missing_key(provider: str, setting: str) -> ProviderAuthError:
    return ProviderAuthError(
        f"No API key is set for the {provider} language model. Please tell the bot's admin.",
        detail=f"{provider}: {setting} is empty",
    )


def unfinished(provider: str, finish_reason: str | None, *, limit: str) -> AnswerCut | None:
    """None when the stream ended as a finished answer does; else how it was left unfinished. A stream that ends
    with no finish reason at all was cut off (a proxy or the provider dropped it); `limit` is the provider's name
    for stopping at the output token limit."""
    if finish_reason is None:
        return AnswerCut(detail=f"{provider}: the stream ended without a finish reason")
    if finish_reason == limit:
        return AnswerCut(detail=f"{provider}: finish_reason={finish_reason}", at_limit=True)
    return None


def refused(provider: str, detail: str) -> ContentRefused:
    return ContentRefused(
        "The language model refused to answer that. Please ask something else.", detail=f"{provider}: {detail}"
    )


def error_for_status(provider: str, status: int, detail: str, headers: Mapping[str, str] | None = None) -> ProviderError:
    """The doppel error for an HTTP error status from a provider."""
    detail = f"{provider}: HTTP {status}: {detail}"
    if status in (401, 403):
        return auth_error(provider, detail)
    if status in (408, 409, 429) or status >= 500:
        return ProviderUnavailable(detail=detail, retry_after=retry_after(headers or {}))
    return ProviderError(detail=detail)


def unreachable(provider: str, what: str) -> ProviderUnavailable:
    return ProviderUnavailable(detail=f"{provider}: {what}")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait (Retry-After as seconds or an HTTP date), if it said."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())
