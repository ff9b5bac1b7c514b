"""Who may talk to the bot and who may run admin commands: config lists first, then admins' decisions in the database.

Ids here are the platform's own numbers (a Telegram or Discord user id); the stored user key carries the
platform prefix ("tg:42"), so the same number on two platforms never shares a decision.
"""
from __future__ import annotations

from dataclasses import dataclass

from adapters.settings import Settings
from core.errors import NotAllowed
from storage.users import UserRepository


@dataclass(frozen=True)
class Decision:
    allowed: bool
    admin: bool


class AccessPolicy:
    """Config admins are always admins and always allowed. Everyone else:

    - denied by an admin (/deny) → refused, whatever the config says;
    - no allowlist configured → allowed;
    - allowlist configured → allowed if listed, or once an admin has run /allow on them.

    A user row is created only for someone who got in (the touch middleware runs after this check), so a
    stored `allowed=True` means "let in before", and an allowlist added later does not lock out known users.
    """

    def __init__(self, settings: Settings, users: UserRepository, platform: str) -> None:
        self.settings = settings
        self.users = users
        self.platform = platform

    def key(self, platform_id: int | str) -> str:
        return f"{self.platform}:{platform_id}"

    async def decide(self, platform_id: int) -> Decision:
        if platform_id in self.settings.admin_ids:
            return Decision(allowed=True, admin=True)
        user = await self.users.get(self.key(platform_id))
        if user is not None and user.is_admin:
            return Decision(allowed=user.allowed, admin=user.allowed)
        if user is not None and not user.allowed:
            return Decision(allowed=False, admin=False)
        if not self.settings.allowed_ids or platform_id in self.settings.allowed_ids:
            return Decision(allowed=True, admin=False)
        return Decision(allowed=user is not None, admin=False)

    async def require_admin(self, platform_id: int) -> None:
        if not (await self.decide(platform_id)).admin:
            raise NotAllowed("Sorry, only the bot's admins can use that command.")

    async def allow(self, platform_id: int) -> None:
        await self.users.set_allowed(self.key(platform_id), True)

    async def deny(self, platform_id: int) -> None:
        if platform_id in self.settings.admin_ids:
            raise NotAllowed("An admin from the configuration cannot be denied; change the config instead.")
        await self.users.set_allowed(self.key(platform_id), False)
