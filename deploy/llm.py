"""The chat model as a Serve deployment that streams: each piece leaves the replica as the model writes it."""
from __future__ import annotations

from contextlib import aclosing
from typing import Any, AsyncGenerator

from ray import serve

from core.types import ChatMessage, LLMOptions, Role
from deploy.wire import carry, replica_settings


@serve.deployment
class ChatModel:
    def __init__(self, settings: dict[str, Any]) -> None:
        from adapters.engines import build_chat_model

        self.model = build_chat_model(replica_settings(settings))
        self.model.warm_up()

    def describe(self) -> dict[str, Any]:
        return {"name": self.model.name, "context_tokens": self.model.context_tokens}

    async def stream(self, messages: list[tuple[Role, str]], temperature: float, max_tokens: int) -> AsyncGenerator[str, None]:
        pieces = self.model.stream([ChatMessage(role, text) for role, text in messages],
                                   LLMOptions(temperature=temperature, max_tokens=max_tokens))
        try:
            # closed at once when the bot cancels the call: a local model then stops writing and frees its lock
            async with aclosing(pieces):
                async for piece in pieces:
                    yield piece
        except Exception as exc:
            raise carry(exc) from None
