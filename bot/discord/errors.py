"""Turning failures into replies, in one place: domain errors are told as they are, anything else is logged."""
from __future__ import annotations

import logging

import discord
from discord import app_commands

from bot.common.ratelimit import RateLimiter
from core.errors import DoppelError

log = logging.getLogger("doppel.discord")
FALLBACK = DoppelError.default_message


def user_message(error: BaseException) -> str:
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, DoppelError):
        if error.detail:
            log.info("refused: %s (%s)", error.code, error.detail)
        return error.message
    if isinstance(error, app_commands.CheckFailure):
        return "Sorry, you are not allowed to do that."
    log.error("unexpected error", exc_info=error)
    return FALLBACK


async def on_app_command_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
    text = user_message(error)
    try:
        if interaction.response.is_done():
            await interaction.edit_original_response(content=text)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell the user about an error", exc_info=True)


async def tell(message: discord.Message, error: BaseException, throttle: RateLimiter | None = None) -> None:
    text = user_message(error)
    if throttle is not None and not throttle.allow(f"dc:{message.channel.id}"):
        log.info("channel %s: error reply held back (too many at once): %s", message.channel.id, text)
        return
    try:
        await message.reply(text, mention_author=False)
    except discord.HTTPException:
        log.warning("could not tell the user about an error", exc_info=True)
