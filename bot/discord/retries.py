"""A call to Discord whose connection dropped is made again, and a repeated message is never posted twice.

discord.py repeats a call after a 429 or a 5xx, but a connection that drops (reset, closed before the answer)
fails the call on Linux, and with it the answer: the voice message was lost. Here such a call is repeated
after a short backoff. A new message carries a nonce that Discord enforces (`enforce_nonce`; discord.py's own
sends set one, our voice-message call gets one here), so where the first attempt did reach Discord before the
connection dropped, the repeat returns that message instead of posting a second one.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
from typing import Any

import aiohttp
from discord.http import HTTPClient, Route

log = logging.getLogger("doppel.discord")

DROPPED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError)
NEW_MESSAGE = "/channels/{channel_id}/messages"


def retry_dropped_calls(http: HTTPClient, *, attempts: int = 4, base_delay: float = 0.5) -> None:
    send = http.request

    async def request(route: Route, *, files: Any = None, form: Any = None, **kwargs: Any) -> Any:
        if route.method == "POST" and route.path == NEW_MESSAGE:
            form = _with_nonce(kwargs, form)
        for attempt in range(1, attempts + 1):
            try:
                return await send(route, files=files, form=form, **kwargs)
            except DROPPED as exc:
                if attempt == attempts:
                    raise
                wait = base_delay * 2 ** (attempt - 1)
                log.warning("%s %s: connection dropped (%s); retry %d in %.1f s", route.method, route.path,
                            type(exc).__name__, attempt, wait)
                for file in files or ():
                    file.reset()  # discord.py rewinds a file only on its own retries
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    http.request = request  # type: ignore[method-assign]  # the retrying request wraps discord.py's own, on this client only


def _with_nonce(kwargs: dict, form: Any) -> Any:
    nonce = {"nonce": secrets.token_hex(12), "enforce_nonce": True}  # Discord takes up to 25 characters
    if isinstance(kwargs.get("json"), dict):
        kwargs["json"] = {**nonce, **kwargs["json"]}
        return form
    if form is None:
        return form
    parts = []
    for part in form:
        if part.get("name") == "payload_json":
            part = {**part, "value": json.dumps({**nonce, **json.loads(part["value"])})}
        parts.append(part)
    return parts
