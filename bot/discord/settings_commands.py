"""Per-server settings (a DM is its own "server"): /voice, /avatar, /persona, /language, /roles.

Anyone may look; changing needs a server manager or a bot admin (gate.require_manager).
"""
from __future__ import annotations

import discord
from discord import app_commands

from bot.common import commands
from bot.discord.gate import ALLOWED_ROLES, admit, chat_key, require_manager


def _chat(interaction: discord.Interaction) -> str:
    return chat_key(interaction.guild_id, interaction.channel_id or 0)


def _bold(name: str) -> str:
    return f"**{name}**"


async def _show_or_choose(interaction: discord.Interaction, typed: str | None,
                          show: commands.Show, choose: commands.Choose) -> None:
    """A bare command shows the choice to the asker alone; a change is said in the channel, by a manager only."""
    bot = interaction.client
    await admit(bot, interaction.user, interaction.guild_id, rate=False)
    value = commands.argument(typed)
    if value is None:
        await interaction.response.send_message(await show(bot.services, _chat(interaction), _bold), ephemeral=True)
        return
    await require_manager(bot, interaction)
    await interaction.response.send_message(await choose(bot.services, _chat(interaction), value, _bold))


@app_commands.command(name="voice", description="Show the voices, or choose the one I answer with here")
@app_commands.describe(name="A voice name; 'default' for the plain voice")
async def voice(interaction: discord.Interaction, name: str | None = None) -> None:
    await _show_or_choose(interaction, name, commands.show_voice, commands.choose_voice)


@app_commands.command(name="avatar", description="Show the avatars, or choose the face of my video answers here")
@app_commands.describe(name="An avatar name; 'off' for no video")
async def avatar(interaction: discord.Interaction, name: str | None = None) -> None:
    await _show_or_choose(interaction, name, commands.show_avatar, commands.choose_avatar)


@app_commands.command(name="persona", description="Show the personas, or choose who I am here")
@app_commands.describe(name="A persona name")
async def persona(interaction: discord.Interaction, name: str | None = None) -> None:
    await _show_or_choose(interaction, name, commands.show_persona, commands.choose_persona)


@app_commands.command(name="language", description="Show or choose the language spoken to me here (en, fr, es ... or auto)")
@app_commands.describe(code="A language code such as en, fr or es; auto to recognise it from each message")
async def language(interaction: discord.Interaction, code: str | None = None) -> None:
    await _show_or_choose(interaction, code, commands.show_language, commands.choose_language)


@app_commands.command(name="roles", description="Show or change which roles may talk to me in this server")
@app_commands.describe(role="The role to allow (or to remove, with remove=True)", remove="Take the role off the list")
@app_commands.guild_only()
async def roles(interaction: discord.Interaction, role: discord.Role | None = None, remove: bool = False) -> None:
    bot = interaction.client
    chat_id = _chat(interaction)
    chat = await bot.services.chats.get(chat_id)
    allowed: list[int] = list((chat.settings or {}).get(ALLOWED_ROLES) or [])
    if role is not None:
        await require_manager(bot, interaction)
        allowed = [r for r in allowed if r != role.id] if remove else sorted(set(allowed) | {role.id})
        await bot.services.chats.set(chat_id, **{ALLOWED_ROLES: allowed})
    names = [f"<@&{r}>" for r in allowed]
    text = "Everyone here may talk to me." if not names else "Only these roles may talk to me here: " + ", ".join(names)
    await interaction.response.send_message(text, ephemeral=role is None, allowed_mentions=discord.AllowedMentions.none())


COMMANDS = (voice, avatar, persona, language, roles)
