"""Per-message gates that run once a handler has matched: access, rate limit, and recording the user.

They run as inner middlewares so group chatter the bot ignores is neither refused nor counted.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from aiogram import BaseMiddleware
from aiogram.types import Message, TelegramObject
from sqlalchemy.exc import IntegrityError

from bot.common.access import AccessPolicy
from bot.common.ratelimit import RateLimiter
from core.errors import NotAllowed
from storage.users import UserRepository

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class AccessMiddleware(BaseMiddleware):
    """Refuses users who may not use the bot; tells handlers whether the sender is an admin (`is_admin`)."""

    def __init__(self, access: AccessPolicy) -> None:
        self.access = access

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user = getattr(event, "from_user", None)
        if user is None or user.is_bot:
            return None  # channel posts and other bots get no answer
        decision = await self.access.decide(user.id)
        if not decision.allowed:
            raise NotAllowed("Sorry, this bot is private. Ask its admin to let you in.")
        data["is_admin"] = decision.admin
        return await handler(event, data)


class AdminOnlyMiddleware(BaseMiddleware):
    """For the admin router: every handler in it is for admins."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not data.get("is_admin"):
            raise NotAllowed("Sorry, only the bot's admins can use that command.")
        return await handler(event, data)


class RateLimitMiddleware(BaseMiddleware):
    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user = getattr(event, "from_user", None)
        if user is not None and not data.get("is_admin"):
            self.limiter.check(f"tg:{user.id}")
        return await handler(event, data)


class TouchMiddleware(BaseMiddleware):
    """Keeps the user's row and display name current, so /allow, /deny and /stats know them."""

    def __init__(self, users: UserRepository) -> None:
        self.users = users

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if isinstance(event, Message) and event.from_user is not None:
            key, name = f"tg:{event.from_user.id}", event.from_user.full_name
            try:
                await self.users.touch(key, name)
            except IntegrityError:
                # a new user's first messages arrive together: another update created the row a moment ago
                await self.users.touch(key, name)
        return await handler(event, data)
