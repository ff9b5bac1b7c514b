"""Timeouts, retries with backoff and a fallback chain around chat models, all behind the one ChatModel port.

The rules:
- a provider that writes nothing for `timeout` seconds (the first piece included) has failed;
- transient failures (429, 5xx, timeouts, refused connections) are retried with exponential backoff, but only
  until the first piece of text went out: text already streamed to the speaker is never repeated;
- when a provider gives up before writing anything, the next in the chain is asked;
- an answer that comes back empty, or cut off before its first words, counts as a failure: the next is asked;
- a content refusal is final: asking another model to say what one refused would dodge the filter;
- every error's detail is scrubbed of the configured API keys before it is logged or raised.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from dataclasses import dataclass
from typing import AsyncGenerator, Sequence

from adapters.llm_errors import ProviderUnavailable, is_retryable, redact
from core.errors import AnswerCut, ContentRefused, DoppelError, ProviderAuthError, ProviderError
from core.ports import ChatModel
from core.types import ChatMessage, LLMOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 2  # extra attempts per provider after the first
    timeout: float = 60.0  # seconds a provider may stay silent, before its first piece or between two
    base_delay: float = 0.5  # the first backoff; doubled each retry
    max_delay: float = 8.0  # a longer wait (a big Retry-After) is not worth it: fall back instead

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry number `attempt` (0-based), or None when waiting is not worth it."""
        backoff = min(self.base_delay * 2.0 ** attempt, self.max_delay)
        if retry_after is None:
            return backoff
        return None if retry_after > self.max_delay else max(backoff, retry_after)


class _AfterOutput(Exception):
    """A provider failed after some of its text was streamed: no retry and no fallback may follow."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(error.message)
        self.error = error


class ResilientChatModel:
    """A chain of chat models tried in order, each with retries and a silence timeout.

    `defaults` carries the configured sampling: its temperature is used for every call, and its max_tokens is
    capped by the request's (the persona's reply limit).
    """

    def __init__(self, chain: Sequence[ChatModel], policy: RetryPolicy | None = None, *,
                 defaults: LLMOptions | None = None, secrets: Sequence[str] = ()) -> None:
        if not chain:
            raise ValueError("a chat-model chain needs at least one model")
        self.chain = list(chain)
        self.policy = policy or RetryPolicy()
        self.defaults = defaults
        self._secrets = [s for s in secrets if s]
        self.name = " > ".join(m.name for m in self.chain)

    def options_for(self, requested: LLMOptions) -> LLMOptions:
        if self.defaults is None:
            return requested
        return LLMOptions(temperature=self.defaults.temperature,
                          max_tokens=max(1, min(self.defaults.max_tokens, requested.max_tokens)))

    @property
    def context_tokens(self) -> int | None:
        """The smallest context window in the chain (a local model's), so a fallback's prompt fits too."""
        sizes = [size for m in self.chain if (size := m.context_tokens)]
        return min(sizes) if sizes else None

    def warm_up(self) -> None:
        for model in self.chain:
            model.warm_up()

    async def aclose(self) -> None:
        """Close the providers' HTTP clients (on the loop that used them)."""
        for model in self.chain:
            await model.aclose()

    async def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncGenerator[str, None]:
        options = self.options_for(options)
        failures: list[ProviderError] = []
        for position, model in enumerate(self.chain):
            try:
                async with aclosing(self._with_retries(model, messages, options)) as pieces:
                    async for piece in pieces:
                        yield piece
                return
            except _AfterOutput as exc:
                raise exc.error from None
            except ContentRefused:
                raise
            except ProviderError as error:
                failures.append(error)
                following = self.chain[position + 1].name if position + 1 < len(self.chain) else None
                log.warning("chat model %s failed (%s: %s)%s", model.name, error.code, error.detail,
                            f"; falling back to {following}" if following else "")
        raise _worst(failures) from None

    async def _with_retries(self, model: ChatModel, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncGenerator[str, None]:
        attempt = 0
        while True:
            wrote = False
            try:
                async with aclosing(self._watched(model, messages, options)) as pieces:
                    async for piece in pieces:
                        wrote = wrote or bool(piece.strip())
                        yield piece
                if wrote:
                    return
                # an empty answer (a thinking model that spent its whole budget on thought): the next model may do better
                raise AnswerCut(detail=f"{model.name}: empty answer")
            except Exception as exc:  # every failure is turned into a scrubbed ProviderError
                error = self._as_provider_error(exc, model.name)
            if wrote:
                raise _AfterOutput(error)
            wait = self.policy.delay(attempt, getattr(error, "retry_after", None)) if is_retryable(error) else None
            if wait is None or attempt >= self.policy.retries:
                raise error
            attempt += 1
            log.info("chat model %s: %s; retry %d of %d in %.2f s", model.name, error.detail, attempt, self.policy.retries, wait)
            await asyncio.sleep(wait)

    async def _watched(self, model: ChatModel, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncGenerator[str, None]:
        pieces = model.stream(messages, options)
        try:
            while True:
                try:
                    piece = await asyncio.wait_for(pieces.__anext__(), self.policy.timeout)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise ProviderUnavailable(detail=f"{model.name}: silent for {self.policy.timeout:g} s") from None
                yield piece
        finally:
            await pieces.aclose()

    def _as_provider_error(self, exc: Exception, name: str) -> ProviderError:
        if isinstance(exc, ProviderError):
            if exc.detail:
                exc.detail = redact(exc.detail, self._secrets)
            return exc
        if isinstance(exc, DoppelError):
            return ProviderError(exc.message, detail=redact(f"{name}: {exc.detail or exc.code}", self._secrets))
        # an engine's own exception (a local model crashing): its text is kept for the logs only, scrubbed
        return ProviderError(detail=redact(f"{name}: {type(exc).__name__}: {exc}", self._secrets))


def _worst(failures: list[ProviderError]) -> ProviderError:
    """The error to show when every provider failed: a key problem first (only the admin can fix it),
    else the primary provider's."""
    for error in failures:
        if isinstance(error, ProviderAuthError):
            return error
    return failures[0]
