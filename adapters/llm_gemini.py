"""Google Gemini through `google-genai` (the maintained SDK; `google-generativeai` is deprecated), streamed.

Gemini's roles differ from the chat-completions ones: the assistant is "model", and the system prompt is not a
turn at all but the request's `system_instruction`.
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncGenerator, Sequence

from adapters.llm_errors import auth_error, error_for_status, missing_key, redact, refused, unfinished, unreachable
from core.errors import ProviderError
from core.types import ChatMessage, LLMOptions

DEFAULT_MODEL = "gemini-2.5-flash"
# finish reasons that mean a filter stopped the answer, not that the model was done
REFUSAL_REASONS = {"SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "RECITATION", "IMAGE_SAFETY"}


def _transport_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, asyncio.TimeoutError]
    for module, name in (("aiohttp", "ClientError"), ("httpx", "TransportError"), ("httpx2", "TransportError")):
        try:
            errors.append(getattr(__import__(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


_TRANSPORT_ERRORS = _transport_errors()


def thinking_budget(model: str) -> int | None:
    """Thought tokens to allow. Gemini 2.5 thinks by default and counts it in the output limit, so a short spoken
    reply's budget could go on thought alone and the answer come back empty: Flash is told not to think, Pro
    (which must) gets the least it accepts. Older models take no thinking setting (None)."""
    name = model.lower()
    if not name.startswith("gemini-2.5"):
        return None
    return 128 if "pro" in name else 0


def to_gemini(messages: Sequence[ChatMessage]) -> tuple[str | None, list[dict[str, Any]]]:
    """(system_instruction, contents): system turns joined into the instruction, assistant → model,
    and consecutive turns of one role merged, since Gemini expects user and model to alternate."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content.strip())
    contents: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        role = "model" if m.role == "assistant" else "user"
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].append({"text": m.content})
        else:
            contents.append({"role": role, "parts": [{"text": m.content}]})
    return (system or None), contents


class GeminiChatModel:
    context_tokens: int | None = None  # a hosted model's window is far beyond any history budget here

    def warm_up(self) -> None:
        """Nothing to load: the first call opens the connection."""

    def __init__(self, model: str = DEFAULT_MODEL, *, api_key: str, base_url: str = "") -> None:
        self.model = model or DEFAULT_MODEL
        self.name = f"gemini:{self.model}"
        self._key = api_key
        self._client = None
        if api_key:
            from google import genai
            from google.genai import types

            # One attempt: without retry_options the SDK quietly retries a refused connection after 1-10 s,
            # and retries belong to the resilience layer. No SDK timeout either: it would cap the whole
            # stream, while the resilience layer times out silence, which is what a stuck provider shows.
            options = types.HttpOptions(base_url=base_url or None, retry_options=types.HttpRetryOptions(attempts=1))
            self._client = genai.Client(api_key=api_key, vertexai=False, http_options=options)

    async def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncGenerator[str, None]:
        if self._client is None:
            raise missing_key("gemini", "DOPPEL_GEMINI_API_KEY")
        from google.genai import errors, types

        system, contents = to_gemini(messages)
        budget = thinking_budget(self.model)
        config = types.GenerateContentConfig(
            system_instruction=system, temperature=options.temperature,
            # a thinking model counts its thoughts in the output limit: the answer keeps its own share
            max_output_tokens=options.max_tokens + (budget or 0),
            thinking_config=None if budget is None else types.ThinkingConfig(thinking_budget=budget),
        )
        failure: ProviderError | None = None
        finish = None
        try:
            response = await self._client.aio.models.generate_content_stream(
                model=self.model, contents=contents, config=config,  # type: ignore[arg-type]  # plain dicts in the SDK's documented shape; its stubs ask for its own classes
            )
            async for chunk in response:
                feedback = chunk.prompt_feedback
                if feedback is not None and feedback.block_reason is not None:
                    raise refused("gemini", f"prompt blocked: {_enum_name(feedback.block_reason)}")
                for candidate in chunk.candidates or []:
                    for part in (candidate.content.parts if candidate.content else None) or []:
                        if part.text and not part.thought:  # a thinking model's notes are not the answer
                            yield part.text
                    reason = _enum_name(candidate.finish_reason)
                    if reason in REFUSAL_REASONS:
                        raise refused("gemini", f"finish_reason={reason}")
                    finish = reason or finish
            failure = unfinished("gemini", finish, limit="MAX_TOKENS")
        except errors.APIError as exc:
            failure = self._api_error(exc)
        except _TRANSPORT_ERRORS as exc:
            failure = unreachable("gemini", type(exc).__name__ + ": " + self._scrub(exc))
        if failure is not None:
            # raised outside the handler so the SDK's exception (which may quote the server) is not its context
            raise failure

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
            self._client.close()

    def _api_error(self, exc: Any) -> ProviderError:  # google.genai's APIError, not imported until used
        detail = self._scrub(exc)
        # a wrong key is answered with 400 INVALID_ARGUMENT / API_KEY_INVALID, not 401
        if exc.code == 400 and ("API_KEY_INVALID" in detail or "API key not valid" in detail):
            return auth_error("gemini", f"gemini: HTTP 400: {detail}")
        headers = getattr(getattr(exc, "response", None), "headers", None)
        return error_for_status("gemini", int(exc.code or 0), detail, dict(headers) if headers else None)

    def _scrub(self, exc: BaseException) -> str:
        return redact(str(exc), [self._key])


def _enum_name(value: object) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))
