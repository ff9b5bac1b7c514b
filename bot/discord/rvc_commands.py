"""Admin slash command /add_rvc: an RVC voice from its model (.pth) and optional index as attachments,
checked in full (bot/common/rvc_voices.py) and ready at once."""
from __future__ import annotations

import discord
from discord import app_commands

from bot.common.rvc_voices import add_rvc_voice
from bot.discord import files
from bot.discord.gate import require_admin

F0_CHOICES = [app_commands.Choice(name=m, value=m) for m in ("yin", "harvest", "pyin")]


@app_commands.default_permissions(manage_guild=True)  # hidden from members, like every admin command
@app_commands.command(name="add_rvc", description="Admin: add an RVC voice from its model (.pth) and index")
@app_commands.describe(name="The new voice's name", model="The .pth RVC exported", index="Its retrieval index (.index)",
                       pitch="Pitch shift in semitones", f0_method="Pitch tracker (harvest: what RVC trains on, slower)",
                       index_rate="How much the index shapes the voice, 0 to 1", protect="Keeps consonants clear, 0 to 0.5")
@app_commands.choices(f0_method=F0_CHOICES)
async def add_rvc(interaction: discord.Interaction, name: str, model: discord.Attachment,
                  index: discord.Attachment | None = None, pitch: float | None = None, f0_method: str | None = None,
                  index_rate: float | None = None, protect: float | None = None) -> None:
    bot = interaction.client
    await require_admin(bot, interaction.user)
    await interaction.response.defer(thinking=True)  # the download and the test sentence outlast Discord's 3 s
    limit = bot.services.settings.discord_max_download
    settings = {k: v for k, v in (("pitch_shift", pitch), ("f0_method", f0_method), ("index_rate", index_rate),
                                  ("protect", protect)) if v is not None}
    model_file = (model.filename, await files.read_any(model, limit))
    index_file = (index.filename, await files.read_any(index, limit)) if index is not None else None
    added = await add_rvc_voice(bot.services, name, model_file, index_file, settings)
    await interaction.edit_original_response(
        content=f"Voice **{added.voice.name}** is ready: RVC {added.version}, {added.sample_rate} Hz"
                f"{', with its index' if index_file else ''}. `/voice {added.voice.name}` makes me use it here.")


COMMANDS = (add_rvc,)
