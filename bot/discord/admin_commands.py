"""Admin slash commands: /add_voice, /train_avatar, /jobs, /cancel, /allow, /deny, /stats, and the versions of
voices and avatars: /versions, /restore, /rename, /delete, /retry.

Training runs in the worker for minutes or hours, longer than an interaction token lives (15 min), so its
status is an ordinary channel message that the bot keeps editing until the job ends.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Awaitable, Callable

import discord
from discord import app_commands

from bot.common import commands, lifecycle
from bot.common.avatars import add_photo_avatar, submit_avatar_training
from bot.common.progress import describe, follow_job, recent_jobs
from bot.common.voices import add_voice as add_voice_clips
from bot.discord import files
from bot.discord.gate import chat_key, require_admin, user_key
from core.errors import BadInput
from core.types import Job, VoiceEngine

if TYPE_CHECKING:
    from bot.discord.app import DoppelDiscord

log = logging.getLogger("doppel.discord")
ENGINES = [app_commands.Choice(name=e.value, value=e.value) for e in (VoiceEngine.LITE, VoiceEngine.RVC, VoiceEngine.COSYVOICE, VoiceEngine.TTS)]


async def _watch(bot: "DoppelDiscord", interaction: discord.Interaction, job: Job) -> None:
    """Post the job's status in the channel and keep that one message up to date."""
    channel = interaction.channel
    if not isinstance(channel, discord.abc.Messageable):
        return
    status = await channel.send(describe(job))

    async def show(current: Job) -> None:
        await status.edit(content=describe(current))

    async def follow() -> None:
        try:
            await follow_job(bot.services.jobs, job.id, show, interval=bot.services.settings.discord_progress_interval)
        except discord.HTTPException:
            log.warning("job %s: status message could not be edited", job.id, exc_info=True)

    bot.background(follow())


@app_commands.default_permissions(manage_guild=True)  # hidden from members; bot admins are checked too
@app_commands.command(name="add_voice", description="Admin: add a voice from recordings (transcribed automatically)")
@app_commands.describe(name="The new voice's name", clip="A recording of the voice", clip2="Another recording",
                       clip3="Another recording", transcript="What the recordings say (default: transcribe them)",
                       engine="How to clone it")
@app_commands.choices(engine=ENGINES)
async def add_voice(interaction: discord.Interaction, name: str, clip: discord.Attachment, clip2: discord.Attachment | None = None,
                    clip3: discord.Attachment | None = None, transcript: str | None = None, engine: str = "lite") -> None:
    bot = interaction.client
    await require_admin(bot, interaction.user)
    await interaction.response.defer(thinking=True)
    limit = bot.services.settings.discord_max_download
    clips = [c for c in (clip, clip2, clip3) if c is not None]
    data = [(c.filename, await files.read_audio(c, limit)) for c in clips]
    added = await add_voice_clips(bot.services, name, data, [transcript] * len(data) if transcript else None,
                                  engine=VoiceEngine(engine), notify_chat=chat_key(interaction.guild_id, interaction.channel_id or 0))
    lines = [f"Voice **{added.name}**: {len(added.clips)} clip(s), {added.seconds:.1f} s."]
    lines += [f"- {file}: “{text}” ({source})" for file, text, source in added.clips]
    await interaction.edit_original_response(content="\n".join(lines)[:2000])
    if added.job is not None:
        await _watch(bot, interaction, added.job)


@app_commands.default_permissions(manage_guild=True)
@app_commands.command(name="train_avatar", description="Admin: make a talking-head avatar from a video (trained) or a photo")
@app_commands.describe(name="The avatar's name", source="A video of the person talking, face visible (trained, takes a while), "
                                                         "or one photo of their face (talks at once)")
async def train_avatar(interaction: discord.Interaction, name: str, source: discord.Attachment) -> None:
    bot = interaction.client
    await require_admin(bot, interaction.user)
    await interaction.response.defer(thinking=True)
    data = await files.read_face(source, bot.services.settings.discord_max_download)
    if files.is_image(source):
        avatar = await add_photo_avatar(bot.services, name, data)
        await interaction.edit_original_response(content=f"Avatar **{avatar.name}** is ready: it talks from this photo. "
                                                         f"`/avatar {avatar.name}` makes me use it here.")
        return
    job = await submit_avatar_training(bot.services, name, data, source.filename,
                                       notify_chat=chat_key(interaction.guild_id, interaction.channel_id or 0))
    await interaction.edit_original_response(content=f"Avatar **{name}**: training queued as job {job.id}. Status below.")
    await _watch(bot, interaction, job)


@app_commands.default_permissions(manage_guild=True)
@app_commands.command(name="jobs", description="Admin: the training jobs")
async def jobs(interaction: discord.Interaction) -> None:
    bot = interaction.client
    await require_admin(bot, interaction.user)
    text = recent_jobs(await bot.services.jobs.list())
    await interaction.response.send_message(text[:2000], ephemeral=True)


# not hidden from members: without a job it stops the caller's own answer, as /cancel does on Telegram
@app_commands.command(name="cancel", description="Stop the answer I am making for you (admins: cancel a training job)")
@app_commands.describe(job="Admins: a training job's number (see /jobs)")
async def cancel(interaction: discord.Interaction, job: int | None = None) -> None:
    bot = interaction.client
    if job is None:
        stopped = bot.queue.cancel(user_key(interaction.user))
        await interaction.response.send_message("Stopped your answer." if stopped else "I am not working on anything for you.",
                                                ephemeral=True)
        return
    await require_admin(bot, interaction.user)
    cancelled = await bot.services.jobs.cancel(job)
    await interaction.response.send_message(describe(cancelled), ephemeral=True)


KINDS = [app_commands.Choice(name=k, value=k) for k in lifecycle.KINDS]


async def _answer(interaction: discord.Interaction, work: Callable[[], Awaitable[str]]) -> None:
    """Deferred first: a delete waits for its training to stop, which may take longer than Discord's 3 s."""
    await require_admin(interaction.client, interaction.user)
    await interaction.response.defer(ephemeral=True, thinking=True)
    text = await work()
    await interaction.edit_original_response(content=(text[0].upper() + text[1:])[:2000])


@app_commands.default_permissions(manage_guild=True)
@app_commands.command(name="versions", description="Admin: voices and avatars, their versions and training")
async def versions(interaction: discord.Interaction) -> None:
    async def work() -> str:
        listed = await lifecycle.entries(interaction.client.services)
        return "\n".join(lifecycle.describe(e) for e in listed) or "No voices or avatars yet."

    await _answer(interaction, work)


@app_commands.default_permissions(manage_guild=True)
@app_commands.command(name="restore", description="Admin: serve an earlier version of a voice or avatar again")
@app_commands.describe(kind="Voice or avatar", name="Its name", version="The version's number (see /versions)")
@app_commands.choices(kind=KINDS)
async def restore(interaction: discord.Interaction, kind: str, name: str, version: int) -> None:
    await _answer(interaction, lambda: lifecycle.restore(interaction.client.services, kind, name, version))


@app_commands.default_permissions(manage_guild=True)
@app_commands.command(name="rename", description="Admin: rename a voice or avatar (chats that use it follow)")
@app_commands.describe(kind="Voice or avatar", name="Its name now", new_name="Its new name")
@app_commands.choices(kind=KINDS)
async def rename(interaction: discord.Interaction, kind: str, name: str, new_name: str) -> None:
    await _answer(interaction, lambda: lifecycle.rename(interaction.client.services, kind, name, new_name))


@app_commands.default_permissions(manage_guild=True)
@app_commands.command(name="delete", description="Admin: delete a voice or avatar with its files")
@app_commands.describe(kind="Voice or avatar", name="Its name")
@app_commands.choices(kind=KINDS)
async def delete(interaction: discord.Interaction, kind: str, name: str) -> None:
    await _answer(interaction, lambda: lifecycle.delete(interaction.client.services, kind, name))


@app_commands.default_permissions(manage_guild=True)
@app_commands.command(name="retry", description="Admin: train a failed or cancelled job again")
@app_commands.describe(job="The job's number (see /jobs or /versions)")
async def retry(interaction: discord.Interaction, job: int) -> None:
    bot = interaction.client
    await require_admin(bot, interaction.user)
    await interaction.response.defer(thinking=True)
    again = await lifecycle.retry(bot.services, job)
    await interaction.edit_original_response(content=f"{again.kind.capitalize()} **{again.target}**: training again as "
                                                     f"job {again.id}; what serves now keeps serving. Status below.")
    await _watch(bot, interaction, again)



def _user_id(text: str) -> int:
    """A Discord user as an admin types them: an id or a mention (<@123>, <@!123>)."""
    digits = text.strip().removeprefix("<@").removeprefix("!").removesuffix(">")
    if not digits.isdigit():
        raise BadInput("Give the user's Discord id, or mention them.")
    return int(digits)


@app_commands.default_permissions(manage_guild=True)
@app_commands.command(name="allow", description="Admin: let a user talk to the bot")
@app_commands.describe(user="Their Discord id, or a mention")
async def allow(interaction: discord.Interaction, user: str) -> None:
    bot = interaction.client
    await require_admin(bot, interaction.user)
    target = _user_id(user)
    await bot.access.allow(target)
    await interaction.response.send_message(f"User {target} may now use the bot.", ephemeral=True)


@app_commands.default_permissions(manage_guild=True)
@app_commands.command(name="deny", description="Admin: stop a user from talking to the bot")
@app_commands.describe(user="Their Discord id, or a mention")
async def deny(interaction: discord.Interaction, user: str) -> None:
    bot = interaction.client
    await require_admin(bot, interaction.user)
    target = _user_id(user)
    await bot.access.deny(target)
    bot.queue.cancel(bot.access.key(target))
    await interaction.response.send_message(f"User {target} may no longer use the bot.", ephemeral=True)


@app_commands.default_permissions(manage_guild=True)
@app_commands.command(name="stats", description="Admin: usage figures")
async def stats(interaction: discord.Interaction) -> None:
    bot = interaction.client
    await require_admin(bot, interaction.user)
    await interaction.response.send_message(await commands.stats(bot.services, bot.queue), ephemeral=True)


COMMANDS = (add_voice, train_avatar, jobs, cancel, allow, deny, stats, versions, restore, rename, delete, retry)
