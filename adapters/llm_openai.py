"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp server, Ollama ...), streamed."""
from __future__ import annotations

from typing import TYPE_CHECKING, AsyncGenerator, Sequence, cast

import openai
from openai import AsyncOpenAI

from adapters.llm_errors import error_for_status, redact, refused, unfinished, unreachable
from core.errors import ProviderError
from core.types import ChatMessage, LLMOptions

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

DEFAULT_MODEL = "gpt-4o-mini"


class OpenAIChatModel:
    context_tokens: int | None = None  # a hosted model's window is far beyond any history budget here

    def warm_up(self) -> None:
        """Nothing to load: the first call opens the connection."""

    def __init__(self, model: str = DEFAULT_MODEL, *, base_url: str, api_key: str = "", timeout: float = 60.0,
                 provider: str = "openai") -> None:
        self.model = model or DEFAULT_MODEL
        self.provider = provider
        self.name = f"{provider}:{self.model}"
        self._secrets = [api_key]
        # a local server needs no key, but the SDK insists on one; retries belong to the resilience layer
        self._client = AsyncOpenAI(api_key=api_key or "no-key", base_url=base_url, max_retries=0, timeout=timeout)

    async def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncGenerator[str, None]:
        payload = [cast("ChatCompletionMessageParam", {"role": m.role, "content": m.content}) for m in messages]
        failure: ProviderError | None = None
        try:
            response = await self._client.chat.completions.create(
                model=self.model, messages=payload, stream=True,
                temperature=options.temperature, max_tokens=options.max_tokens,
            )
            finish = None
            async with response:
                async for chunk in response:
                    for choice in chunk.choices:
                        if choice.delta and choice.delta.content:
                            yield choice.delta.content
                        if choice.finish_reason == "content_filter":
                            raise refused(self.provider, "finish_reason=content_filter")
                        finish = choice.finish_reason or finish
            failure = unfinished(self.provider, finish, limit="length")
        except openai.APIStatusError as exc:
            failure = error_for_status(self.provider, exc.status_code, self._scrub(exc), exc.response.headers)
        except openai.APIConnectionError as exc:  # timeouts included
            failure = unreachable(self.provider, type(exc).__name__ + ": " + self._scrub(exc))
        except openai.OpenAIError as exc:
            failure = ProviderError(detail=f"{self.provider}: {type(exc).__name__}: {self._scrub(exc)}")
        if failure is not None:
            # raised outside the handler so the SDK's exception (which may quote the server) is not its context
            raise failure

    async def aclose(self) -> None:
        await self._client.close()

    def _scrub(self, exc: BaseException) -> str:
        return redact(str(exc), self._secrets)
