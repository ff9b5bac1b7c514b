"""Loopback HTTP servers that speak the wire formats of OpenAI, ZhipuAI and Gemini, streamed answers included.

The real SDKs are pointed at them by base URL. Each server answers from a script of `Reply`s (the last one
repeats) and records every request it got, so a test can check what the SDK really put on the wire.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

Dialect = Literal["openai", "zhipu", "gemini"]


@dataclass
class Reply:
    """One scripted answer: streamed text pieces, or an HTTP error."""

    pieces: list[str] = field(default_factory=lambda: ["Hello", " there.", " How are", " you?"])
    status: int = 200
    error: dict | None = None  # the JSON error body when status != 200 (a dialect default if None)
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str | None = None  # None: the dialect's normal stop reason
    piece_delay: float = 0.0  # seconds before each piece: a model writing at a given rate
    hold_after: int | None = None  # after this many pieces, wait for `release` before the rest
    release: asyncio.Event | None = None
    abort_after: int | None = None  # after this many pieces, drop the connection mid-answer
    cut_after: int | None = None  # after this many pieces, end the stream cleanly but with no finish reason (a cut-off answer)
    blocked_prompt: bool = False  # gemini: promptFeedback.blockReason instead of candidates


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict


class FakeLLMServer:
    """An aiohttp app on 127.0.0.1 for one dialect. Use `async with FakeLLMServer("openai") as s: s.base_url`."""

    def __init__(self, dialect: Dialect, replies: list[Reply] | None = None) -> None:
        self.dialect = dialect
        self.replies: deque[Reply] = deque(replies or [Reply()])
        self.requests: list[Recorded] = []
        self.pieces_sent = 0  # over the whole life of the server
        self.finished_streams = 0
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        root = f"http://127.0.0.1:{self.port}"
        return {"openai": f"{root}/v1", "zhipu": f"{root}/api/paas/v4/", "gemini": f"{root}/"}[self.dialect]

    def script(self, *replies: Reply) -> None:
        self.replies = deque(replies)

    async def __aenter__(self) -> "FakeLLMServer":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp's server behind a started site; it has sockets by now
        return self

    async def __aexit__(self, *exc) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _next_reply(self) -> Reply:
        return self.replies.popleft() if len(self.replies) > 1 else self.replies[0]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        self.requests.append(Recorded(request.method, request.path, dict(request.query), dict(request.headers), body))
        if not self._route_ok(request):
            return web.json_response({"error": {"message": f"no route {request.method} {request.path}"}}, status=404)
        reply = self._next_reply()
        if reply.status != 200:
            return web.json_response(reply.error or self._default_error(reply.status), status=reply.status,
                                     headers=reply.headers)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               **reply.headers})
        await response.prepare(request)
        model = self._model(request, body)
        stream_id = next(self._ids)
        if self.dialect == "gemini" and reply.blocked_prompt:
            await self._event(response, {"promptFeedback": {"blockReason": "SAFETY"}, "modelVersion": model})
            await response.write_eof()
            return response
        for i, piece in enumerate(reply.pieces):
            if reply.hold_after is not None and i == reply.hold_after and reply.release is not None:
                await reply.release.wait()
            if reply.abort_after is not None and i == reply.abort_after:
                assert request.transport is not None
                request.transport.close()
                return response
            if reply.cut_after is not None and i == reply.cut_after:
                await response.write_eof()
                return response
            if reply.piece_delay:
                await asyncio.sleep(reply.piece_delay)
            await self._event(response, self._chunk(model, stream_id, piece, first=i == 0))
            self.pieces_sent += 1
        await self._event(response, self._last_chunk(model, stream_id, reply))
        if self.dialect != "gemini":
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        self.finished_streams += 1
        return response

    def _route_ok(self, request: web.Request) -> bool:
        if request.method != "POST":
            return False
        if self.dialect == "openai":
            return request.path == "/v1/chat/completions"
        if self.dialect == "zhipu":
            return request.path == "/api/paas/v4/chat/completions"
        return request.path.endswith(":streamGenerateContent") and "/models/" in request.path

    def _model(self, request: web.Request, body: dict) -> str:
        if self.dialect == "gemini":
            return request.path.rsplit("/models/", 1)[1].split(":", 1)[0]
        return str(body.get("model", ""))

    @staticmethod
    async def _event(response: web.StreamResponse, data: dict) -> None:
        await response.write(f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode())

    def _chunk(self, model: str, stream_id: int, piece: str, first: bool) -> dict:
        created = int(time.time())
        if self.dialect == "gemini":
            return {"candidates": [{"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}],
                    "modelVersion": model}
        delta = {"role": "assistant", "content": piece} if first else {"content": piece}
        chunk = {"id": f"chat-{stream_id}", "created": created, "model": model,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        if self.dialect == "openai":
            chunk["object"] = "chat.completion.chunk"
        return chunk

    def _last_chunk(self, model: str, stream_id: int, reply: Reply) -> dict:
        if self.dialect == "gemini":
            return {"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]},
                                    "finishReason": reply.finish_reason or "STOP", "index": 0}],
                    "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": len(reply.pieces),
                                      "totalTokenCount": 10 + len(reply.pieces)},
                    "modelVersion": model}
        chunk = {"id": f"chat-{stream_id}", "created": int(time.time()), "model": model,
                 "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": reply.finish_reason or "stop"}],
                 "usage": {"prompt_tokens": 10, "completion_tokens": len(reply.pieces), "total_tokens": 10 + len(reply.pieces)}}
        if self.dialect == "openai":
            chunk["object"] = "chat.completion.chunk"
        return chunk

    def _default_error(self, status: int) -> dict:
        # bodies shaped like each provider's own error responses
        if self.dialect == "gemini":
            names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED",
                     500: "INTERNAL", 503: "UNAVAILABLE"}
            return {"error": {"code": status, "message": f"fake error {status}", "status": names.get(status, "UNKNOWN")}}
        if self.dialect == "zhipu":
            codes = {401: "1002", 429: "1302", 500: "500", 503: "1305"}
            return {"error": {"code": codes.get(status, "1210"), "message": f"fake error {status}"}}
        types = {401: "invalid_request_error", 429: "rate_limit_exceeded", 500: "server_error"}
        return {"error": {"message": f"fake error {status}", "type": types.get(status, "api_error"), "code": None}}


def dead_url(dialect: Dialect) -> str:
    """A base URL on a loopback port nothing listens on: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = f"http://127.0.0.1:{port}"
    return {"openai": f"{root}/v1", "zhipu": f"{root}/api/paas/v4/", "gemini": f"{root}/"}[dialect]
