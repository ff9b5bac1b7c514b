"""Who may talk to the bot here, and how fast: the checks every Discord handler runs before any work.

Ids: a Discord user is "dc:<user id>"; a conversation's chat is "dc:<guild id>" in a server (so the
server's settings apply to it) or "dc:<channel id>" in a DM.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from core.errors import NotAllowed

if TYPE_CHECKING:
    from bot.discord.app import DoppelDiscord

ALLOWED_ROLES = "allowed_roles"  # chat setting: role ids that may talk to the bot in a server; empty: everyone


def user_key(user: discord.abc.User) -> str:
    return f"dc:{user.id}"


def chat_key(guild_id: int | None, channel_id: int) -> str:
    return f"dc:{guild_id if guild_id is not None else channel_id}"


async def admit(bot: "DoppelDiscord", user: discord.abc.User, guild_id: int | None, *, rate: bool = True) -> bool:
    """Raise NotAllowed or RateLimited, or return whether the user is a bot admin."""
    decision = await bot.access.decide(user.id)
    if not decision.allowed:
        raise NotAllowed()
    if guild_id is not None and not decision.admin:
        roles = (await bot.services.chats.get(chat_key(guild_id, 0))).settings.get(ALLOWED_ROLES) or []
        mine = {r.id for r in getattr(user, "roles", [])}
        if roles and not mine.intersection(roles):
            raise NotAllowed("Sorry, in this server only members with an allowed role can talk to me.")
    if rate and not decision.admin:
        bot.limiter.check(user_key(user))
    return decision.admin


async def require_admin(bot: "DoppelDiscord", user: discord.abc.User) -> None:
    await bot.access.require_admin(user.id)


async def require_manager(bot: "DoppelDiscord", interaction: discord.Interaction) -> None:
    """Changing a chat's settings: bot admins; in a server, members who may manage it; in a DM, its user."""
    if interaction.guild_id is None or interaction.permissions.manage_guild:
        return
    if (await bot.access.decide(interaction.user.id)).admin:
        return
    raise NotAllowed("Only the server's managers or the bot's admins can change that.")
