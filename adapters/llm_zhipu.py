"""ZhipuAI GLM-4 / GLM-4.5 through the official `zhipuai` SDK, streamed.

The SDK is synchronous, so its chunks are read in a worker thread and handed to the event loop as they come.
"""
from __future__ import annotations

import json
import re
from typing import Any, AsyncGenerator, Iterator, Sequence

from adapters.llm_errors import error_for_status, missing_key, redact, refused, unfinished, unreachable
from adapters.threads import iterate_in_thread
from core.errors import ProviderError
from core.types import ChatMessage, LLMOptions

DEFAULT_MODEL = "glm-4-flash"
# GLM's error codes for input or output its content filter blocked
SENSITIVE_CODES = {"1301"}
# GLM-4.5 and later think before answering unless told not to; a spoken reply can't wait for that
_THINKING_MODELS = re.compile(r"^glm-(4\.[5-9]|[5-9])", re.IGNORECASE)


class ZhipuChatModel:
    context_tokens: int | None = None  # a hosted model's window is far beyond any history budget here

    def warm_up(self) -> None:
        """Nothing to load: the first call opens the connection."""

    def __init__(self, model: str = DEFAULT_MODEL, *, api_key: str, base_url: str | None = None, timeout: float = 60.0) -> None:
        self.model = model or DEFAULT_MODEL
        self.name = f"zhipu:{self.model}"
        self._key = api_key
        self._client = None
        if api_key:
            from zhipuai import ZhipuAI

            # the SDK's own retries stay off: the resilience layer retries, and only before the first token
            self._client = ZhipuAI(api_key=api_key, base_url=base_url or None, timeout=timeout, max_retries=0)

    def request(self, messages: Sequence[ChatMessage], options: LLMOptions) -> dict[str, Any]:
        """The keyword arguments for `chat.completions.create`."""
        kwargs: dict[str, Any] = dict(
            model=self.model, stream=True, temperature=options.temperature, max_tokens=options.max_tokens,
            messages=[{"role": m.role, "content": m.content} for m in messages],
        )
        if _THINKING_MODELS.match(self.model):
            kwargs["thinking"] = {"type": "disabled"}
        return kwargs

    async def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncGenerator[str, None]:
        if self._client is None:
            raise missing_key("zhipu", "DOPPEL_ZHIPU_API_KEY")
        kwargs = self.request(messages, options)
        client = self._client

        def pieces() -> Iterator[str]:
            response = client.chat.completions.create(**kwargs)
            finish = None
            try:
                for chunk in response:
                    for choice in chunk.choices:
                        # reasoning_content (a thinking model's notes) is not part of the answer
                        if choice.delta.content:
                            yield choice.delta.content
                        if choice.finish_reason == "sensitive":
                            raise refused("zhipu", "finish_reason=sensitive")
                        finish = choice.finish_reason or finish
            finally:
                response.response.close()
            cut = unfinished("zhipu", finish, limit="length")
            if cut is not None:
                raise cut

        import httpx
        from zhipuai.core import _errors as zerr

        failure: ProviderError | None = None
        try:
            async for piece in iterate_in_thread(pieces):
                yield piece
        except zerr.APIStatusError as exc:
            failure = self._status_error(exc)
        except zerr.APIConnectionError as exc:  # timeouts included
            failure = unreachable("zhipu", type(exc).__name__ + ": " + self._scrub(exc))
        except zerr.APIResponseError as exc:  # an error event inside the stream
            if _error_code(exc.json_data) in SENSITIVE_CODES:
                failure = refused("zhipu", self._scrub(exc))
            else:
                failure = ProviderError(detail=f"zhipu: {type(exc).__name__}: {self._scrub(exc)}")
        except httpx.TransportError as exc:  # the connection broke while the answer was streaming
            failure = unreachable("zhipu", type(exc).__name__ + ": " + self._scrub(exc))
        except zerr.ZhipuAIError as exc:
            failure = ProviderError(detail=f"zhipu: {type(exc).__name__}: {self._scrub(exc)}")
        if failure is not None:
            # raised outside the handler so the SDK's exception (which may quote the server) is not its context
            raise failure

    async def aclose(self) -> None:
        if self._client is not None:
            self._client.close()

    def _status_error(self, exc: Any) -> ProviderError:  # zhipuai's APIStatusError, not imported until used
        try:
            body = exc.response.json()
        except (ValueError, json.JSONDecodeError):
            body = None
        if _error_code(body.get("error") if isinstance(body, dict) else None) in SENSITIVE_CODES:
            return refused("zhipu", self._scrub(exc))
        return error_for_status("zhipu", exc.status_code, self._scrub(exc), exc.response.headers)

    def _scrub(self, exc: BaseException) -> str:
        return redact(str(exc), [self._key])


def _error_code(error: object) -> str | None:
    if isinstance(error, dict) and error.get("code") is not None:
        return str(error["code"])
    return None
