"""The one place errors become replies: a DoppelError's message as-is, anything else as a short apology."""
from __future__ import annotations

import logging

from aiogram import Router
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent

from bot.common.ratelimit import RateLimiter
from bot.common.userqueue import ReplyCancelled
from core.errors import DoppelError

log = logging.getLogger(__name__)

# Telegram being unreachable is not the user's fault and not a reason to drop the update: these propagate, and
# the delivery loop leaves the update unacknowledged so it is tried again.
RETRYABLE = (TelegramNetworkError, TelegramServerError, TelegramRetryAfter)


async def cancelled(event: ErrorEvent, error_replies: RateLimiter) -> None:
    await _tell(event, "Stopped your reply.", error_replies)


async def doppel_error(event: ErrorEvent, error_replies: RateLimiter) -> None:
    exc = event.exception
    assert isinstance(exc, DoppelError)
    if exc.detail:
        log.info("update %s: %s (%s)", event.update.update_id, exc.code, exc.detail)
    await _tell(event, exc.message, error_replies)


async def unexpected(event: ErrorEvent, error_replies: RateLimiter) -> None:
    if isinstance(event.exception, RETRYABLE):
        raise event.exception
    log.error("update %s failed", event.update.update_id, exc_info=event.exception)
    await _tell(event, DoppelError.default_message, error_replies)


async def _tell(event: ErrorEvent, text: str, error_replies: RateLimiter) -> None:
    message = event.update.message
    if message is None:
        return
    if not error_replies.allow(f"tg:{message.chat.id}"):
        log.info("chat %s: error reply held back (too many at once): %s", message.chat.id, text)
        return
    try:
        await message.answer(text, parse_mode=None)
    except TelegramAPIError as exc:  # the chat may be gone; the error is already logged
        log.warning("could not tell chat %s about an error: %s", message.chat.id, exc)


def make_router() -> Router:
    router = Router(name="errors")
    router.errors.register(cancelled, ExceptionTypeFilter(ReplyCancelled))
    router.errors.register(doppel_error, ExceptionTypeFilter(DoppelError))
    router.errors.register(unexpected, ExceptionTypeFilter(Exception))
    return router
