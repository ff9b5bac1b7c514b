"""Each call to Telegram that fails for a passing reason is retried on its own, so an answer is never made twice.

Before, a 429, a 5xx or a dropped connection on one send failed the whole update, which was then handled
again from the start: the user got a second, different answer. Here the failed call alone is repeated
(after Telegram's `retry_after`, or a short backoff), and the delivery loop learns which updates already
put something in front of the user: those are never handled again, whatever fails later.
"""
from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import GetUpdates, SendChatAction, TelegramMethod

log = logging.getLogger(__name__)

# the update being handled in this task (set by Delivery), so sends can be credited to it
current_update: ContextVar[int | None] = ContextVar("current_update", default=None)


class SendRetries(BaseRequestMiddleware):
    def __init__(self, *, attempts: int = 5, base_delay: float = 0.5, max_wait: float = 60.0) -> None:
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_wait = max_wait  # a longer retry_after is not waited out: the call fails
        self.delivered: set[int] = set()  # updates with at least one message already sent for them

    async def __call__(self, make_request: NextRequestMiddlewareType, bot: Bot, method: TelegramMethod):
        if isinstance(method, GetUpdates):
            return await make_request(bot, method)  # the poller has its own backoff
        attempt = 0
        while True:
            try:
                response = await make_request(bot, method)
                break
            except (TelegramRetryAfter, TelegramServerError, TelegramNetworkError) as exc:
                attempt += 1
                wait = exc.retry_after if isinstance(exc, TelegramRetryAfter) else self.base_delay * 2 ** (attempt - 1)
                if attempt >= self.attempts or wait > self.max_wait or isinstance(method, SendChatAction):
                    raise
                log.warning("%s failed (%s); retry %d in %.1f s", type(method).__name__, exc, attempt, wait)
                await asyncio.sleep(wait)
        update = current_update.get()
        if update is not None and not isinstance(method, SendChatAction) \
                and type(method).__name__.startswith(("Send", "Edit", "Copy", "Forward")):
            self.delivered.add(update)
        return response

    def has_delivered(self, update_id: int) -> bool:
        return update_id in self.delivered

    def forget(self, update_id: int) -> None:
        self.delivered.discard(update_id)
