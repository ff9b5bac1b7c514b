"""Per-server settings (a DM is its own "server"): /voice, /avatar, /persona, /language, /roles.

Anyone may look; changing needs a server manager or a bot admin (gate.require_manager).
"""
from __future__ import annotations

import discord
from discord import app_commands

from bot.common.avatars import find_avatar, list_avatars
from bot.common.default_voice import back_to_default
from bot.discord.gate import ALLOWED_ROLES, admit, chat_key, require_manager
from core.errors import BadInput
from core.languages import chosen_language

RESET_WORDS = ("default", "none", "reset")


def _chat(interaction: discord.Interaction) -> str:
    return chat_key(interaction.guild_id, interaction.channel_id or 0)


@app_commands.command(name="voice", description="Show the voices, or choose the one I answer with here")
@app_commands.describe(name="A voice name; 'default' for the plain voice")
async def voice(interaction: discord.Interaction, name: str | None = None) -> None:
    bot = interaction.client
    services = bot.services
    await admit(bot, interaction.user, interaction.guild_id, rate=False)
    chat = await services.chats.get(_chat(interaction))
    if name is None:
        voices = await services.voices.list()
        lines = [f"- {v.name} ({v.engine.value}, {v.language}){'' if v.ready else ' — training'}" for v in voices]
        current = chat.voice or services.settings.voice or "default"
        await interaction.response.send_message(f"Voice here: **{current}**\n" + ("\n".join(lines) or "No cloned voices yet."),
                                                ephemeral=True)
        return
    await require_manager(bot, interaction)
    if name.lower() in RESET_WORDS:
        await interaction.response.send_message(await back_to_default(services, _chat(interaction)))
        return
    chosen = await services.voices.get(name)  # UnknownVoice when there is none
    await services.chats.set(_chat(interaction), voice=chosen.name)
    note = "" if chosen.ready else " It is still training; replies will use it once it is ready."
    await interaction.response.send_message(f"I answer with the voice **{chosen.name}** here now.{note}")


@app_commands.command(name="avatar", description="Show the avatars, or choose the face of my video answers here")
@app_commands.describe(name="An avatar name; 'off' for no video")
async def avatar(interaction: discord.Interaction, name: str | None = None) -> None:
    bot = interaction.client
    services = bot.services
    await admit(bot, interaction.user, interaction.guild_id, rate=False)
    if name is None:
        known = await list_avatars(services)
        current = (await services.chats.get(_chat(interaction))).avatar or services.settings.avatar or "none"
        listing = ", ".join(f"{a.name}{'' if a.ready else ' (training)'}" for a in known) or "none yet"
        await interaction.response.send_message(f"My face here: **{current}**. Avatars: {listing}.", ephemeral=True)
        return
    await require_manager(bot, interaction)
    if name.lower() in ("off", *RESET_WORDS):
        await services.chats.set(_chat(interaction), avatar=None)
        await interaction.response.send_message("No more video answers here.")
        return
    chosen = await find_avatar(services, name)
    if chosen is None:
        raise BadInput(f"There is no avatar called '{name}'. `/avatar` lists them.")
    await services.chats.set(_chat(interaction), avatar=chosen.name)
    note = "" if chosen.ready else " It is still training; videos start once it is ready."
    await interaction.response.send_message(f"I answer with the face **{chosen.name}** here too now.{note}")


@app_commands.command(name="persona", description="Show the personas, or choose who I am here")
@app_commands.describe(name="A persona name")
async def persona(interaction: discord.Interaction, name: str | None = None) -> None:
    bot = interaction.client
    services = bot.services
    await admit(bot, interaction.user, interaction.guild_id, rate=False)
    chat = await services.chats.get(_chat(interaction))
    if name is None:
        current = chat.persona or services.settings.persona
        await interaction.response.send_message(
            f"Persona here: **{current}**. Personas: {', '.join(services.personas.names())}.", ephemeral=True)
        return
    await require_manager(bot, interaction)
    chosen = services.personas.get(name)  # UnknownPersona lists the names
    await services.chats.set(_chat(interaction), persona=chosen.name)
    await interaction.response.send_message(f"I am **{chosen.name}** here now.")


@app_commands.command(name="language", description="Show or choose the language spoken to me here (en, fr, es ... or auto)")
@app_commands.describe(code="A language code such as en, fr or es; auto to recognise it from each message")
async def language(interaction: discord.Interaction, code: str | None = None) -> None:
    bot = interaction.client
    services = bot.services
    await admit(bot, interaction.user, interaction.guild_id, rate=False)
    if code is None:
        current = (await services.chats.get(_chat(interaction))).language or services.settings.language
        await interaction.response.send_message(
            f"I expect **{current}** here. `/language CODE` changes it: {', '.join(services.settings.languages) or 'any code'}"
            ", or auto.", ephemeral=True)
        return
    await require_manager(bot, interaction)
    chosen = chosen_language(code, services.settings.languages)  # UnknownLanguage, or BadInput naming the choices
    await services.chats.set(_chat(interaction), language=chosen)
    await interaction.response.send_message(f"Language here: **{chosen}**.")


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
