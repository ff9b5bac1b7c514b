"""The Discord bot: a discord.py client with the slash-command modules and the message inbox plugged in.

Everything that answers (engines, repositories, dialogue, access, limits) is built once and hung on the
client; handlers reach it as `interaction.client`.

Replicas: run one process per shard (DOPPEL_DISCORD_SHARD_ID of DOPPEL_DISCORD_SHARD_COUNT), all on one
PostgreSQL database. Discord sends each guild's events to one shard; a message that still reaches two replicas
is answered by the one holding its claim (bot/discord/claims.py), which another replica takes over should the
holder die mid-answer; a slash command runs on the replica that records its interaction id first.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Coroutine

import discord
from discord import app_commands

from bot.common.access import AccessPolicy
from bot.common.dialogue import Dialogue
from bot.common.ratelimit import RateLimiter, error_replies
from bot.common.userqueue import UserQueue
from bot.discord import admin_commands, chat_commands, inbox, rvc_commands, settings_commands
from bot.discord.claims import MessageClaims
from bot.discord.endpoints import discover_gateway, point_at
from bot.discord.errors import on_app_command_error
from bot.discord.retries import retry_dropped_calls
from bot.wiring import Services
from core.errors import StartupError
from storage.updates import HandledUpdates

log = logging.getLogger("doppel.discord")


def intents() -> discord.Intents:
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    # privileged: without it, attachments of messages that neither mention nor DM the bot arrive empty,
    # and a voice message replying to the bot carries no mention
    wanted.message_content = True
    return wanted


class DoppelDiscord(discord.Client):
    def __init__(self, services: Services) -> None:
        settings = services.settings
        point_at(settings.discord_api_url, settings.discord_gateway_url)
        shards: dict[str, Any] = {"shard_id": settings.discord_shard_id, "shard_count": settings.discord_shard_count} \
            if settings.discord_shard_count else {}
        super().__init__(intents=intents(), allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=True),
                         **shards)
        retry_dropped_calls(self.http)
        self.services = services
        self.dialogue = Dialogue(services)
        self.access = AccessPolicy(settings, services.users, "dc")
        self.limiter = RateLimiter(settings.rate_limit_per_minute)
        self.error_replies = error_replies()
        self.queue = UserQueue(settings.discord_max_waiting, settings.discord_replies_at_once or None)
        self.handled = HandledUpdates(services.sessions, "discord")
        self.claims = MessageClaims(self.handled, settings.replica_lease_seconds)
        self._stop_sweeping = asyncio.Event()
        self._sweeping: asyncio.Task | None = None
        self.tree = app_commands.CommandTree(self)
        # discord.py's documented way to handle a tree's errors and checks is to replace these two hooks
        self.tree.on_error = on_app_command_error  # type: ignore[method-assign]
        self.tree.interaction_check = self._first_to_claim  # type: ignore[method-assign]
        for command in (*chat_commands.COMMANDS, *settings_commands.COMMANDS, *admin_commands.COMMANDS,
                        *rvc_commands.COMMANDS):
            self.tree.add_command(command)
        self._tasks: set[asyncio.Task] = set()

    async def setup_hook(self) -> None:
        # messages whose replica died mid-answer, in the inbox shared with the other replicas
        self._sweeping = asyncio.create_task(self.claims.run_sweeps(self, lambda message: inbox.on_message(self, message),
                                                                    self._stop_sweeping))
        if not self.services.settings.discord_gateway_url:
            log.info("gateway: %s", await discover_gateway(self))
        guild_id = self.services.settings.discord_sync_guild
        if guild_id:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()

    async def _first_to_claim(self, interaction: discord.Interaction) -> bool:
        """A slash command runs on the one replica that records its interaction id first (ids are unique snowflakes,
        so messages and interactions share the record); autocompletion is answered wherever it lands."""
        if interaction.type is not discord.InteractionType.application_command:
            return True
        return await self.handled.mark(interaction.id)

    async def on_message(self, message: discord.Message) -> None:
        await inbox.on_message(self, message)

    def background(self, work: Coroutine) -> asyncio.Task:
        """Run work that outlives its handler (job status edits); kept here so it is not collected or orphaned."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        self._stop_sweeping.set()
        if self._sweeping is not None:
            await self._sweeping
        await self.claims.abort()  # before the HTTP session closes under them; another replica or the next start answers
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await super().close()


async def run(services: Services) -> None:
    settings = services.settings
    token = settings.discord_token.get_secret_value()
    if not token:
        raise StartupError("not set; put the bot token from the Discord developer portal in .env",
                           setting="DOPPEL_DISCORD_TOKEN", doc="docs/discord.md")
    if settings.discord_shard_count < 0 or not 0 <= settings.discord_shard_id < max(1, settings.discord_shard_count):
        raise StartupError(f"must be from 0 to DOPPEL_DISCORD_SHARD_COUNT - 1 (it is {settings.discord_shard_id}, of "
                           f"{settings.discord_shard_count})", setting="DOPPEL_DISCORD_SHARD_ID", doc="docs/cluster.md")
    await start(DoppelDiscord(services), token)


async def start(client: DoppelDiscord, token: str) -> None:
    """Run the client until it closes; the platform's refusals at login come back as one-line StartupErrors."""
    try:
        async with client:
            await client.start(token)
    except discord.LoginFailure:
        raise StartupError("Discord rejected the bot token", setting="DOPPEL_DISCORD_TOKEN", doc="docs/discord.md") from None
    except discord.PrivilegedIntentsRequired:
        raise StartupError("Discord refused the Message Content intent: turn it on in the developer portal under "
                           "Bot > Privileged Gateway Intents", setting="Message Content intent", doc="docs/discord.md") from None
