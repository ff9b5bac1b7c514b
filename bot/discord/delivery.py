"""Running one turn and posting what it made: text, a voice message, and the talking-head MP4 when there is one.

Two destinations: a reply to a user's message in its channel, and a deferred slash command whose
"thinking…" placeholder becomes the text, with the voice and video as follow-ups.
"""
from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Awaitable, Callable

import discord
from discord.http import Route

from bot.common.dialogue import Incoming
from bot.common.replies import ReplyAssembler, split_text
from bot.common.slots import busy_note
from bot.discord.voice_message import VoiceNote, send_voice_message, to_channel, to_followup
from core.types import SpeechDone, VideoFrame

if TYPE_CHECKING:
    from bot.discord.app import DoppelDiscord

log = logging.getLogger("doppel.discord")
TEXT_LIMIT = 2000  # characters in one Discord message
VIDEO_NAME = "reply.mp4"
AUDIO_NAME = "reply.ogg"
VOICE_REFUSED = 50173  # "You cannot send voice messages in this channel."


Post = Callable[[ReplyAssembler], Awaitable[None]]


async def run_turn(bot: "DoppelDiscord", msg: Incoming, *, speak: bool = True, on_speech: Post | None = None,
                   on_video: Post | None = None, busy: BusyNote | None = None) -> ReplyAssembler:
    """The user's turns run one after another (bot.queue); the dialogue does the rest.

    `on_speech` posts the text and voice as soon as they are whole, before a talking head is rendered;
    `on_video` posts the video when it comes; `busy` tells the user their place in line while the bot is busy."""

    async def work() -> ReplyAssembler:
        if busy is not None:
            await busy.clear()
        reply = ReplyAssembler()
        async for frame in bot.dialogue.reply(msg, speak=speak):
            reply.feed(frame)
            if isinstance(frame, SpeechDone) and on_speech is not None:
                await on_speech(reply)
            elif isinstance(frame, VideoFrame) and on_video is not None:
                await on_video(reply)
        return reply

    return await bot.queue.run(msg.user_id, work, on_wait=busy.show if busy is not None else None)


class BusyNote:
    """One message saying the user's place in line while every reply slot is taken, edited as the line moves
    and removed when the answer starts. `post` sends it; a failure to post never stops the answer."""

    def __init__(self, post: Callable[[str], Awaitable[discord.Message | None]], *, remove: bool = True) -> None:
        self.post = post
        self.remove = remove
        self.message: discord.Message | None = None

    async def show(self, place: int) -> None:
        try:
            if self.message is None:
                self.message = await self.post(busy_note(place))
            else:
                await self.message.edit(content=busy_note(place))
        except discord.HTTPException as exc:
            log.info("could not show the place in line: %s", exc)

    async def clear(self) -> None:
        if self.message is not None and self.remove:
            try:
                await self.message.delete()
            except discord.HTTPException as exc:
                log.info("could not remove the place-in-line note: %s", exc)
        self.message = None


def voice_note(reply: ReplyAssembler) -> VoiceNote:
    ogg, seconds = reply.voice_note()
    return VoiceNote(ogg, seconds, reply.waveform())


async def _sent_as_voice(bot: "DoppelDiscord", route: Route, note: VoiceNote, *, reply_to: int | None = None) -> bool:
    """False where the channel refuses voice messages (no Send Voice Messages permission): the caller then
    sends the same audio as an ordinary file, so the answer is never lost."""
    try:
        await send_voice_message(bot.http, route, note, reply_to=reply_to)
        return True
    except discord.Forbidden as exc:
        if exc.code != VOICE_REFUSED:
            raise
        log.info("voice messages refused on %s; sending a file", route.path)
        return False


async def message_speech(bot: "DoppelDiscord", message: discord.Message, reply: ReplyAssembler, *, with_text: bool) -> None:
    if with_text:
        for i, part in enumerate(split_text(reply.text, TEXT_LIMIT)):
            await (message.reply(part, mention_author=False) if i == 0 else message.channel.send(part))
    if reply.has_speech:
        note = voice_note(reply)
        if not await _sent_as_voice(bot, to_channel(message.channel.id), note, reply_to=message.id):
            await message.reply(file=discord.File(io.BytesIO(note.ogg), AUDIO_NAME), mention_author=False)
    for text in reply.notes:
        await message.channel.send(text)


async def message_video(message: discord.Message, reply: ReplyAssembler) -> None:
    if reply.video is not None:
        await message.channel.send(file=discord.File(io.BytesIO(reply.video.mp4), VIDEO_NAME))


async def interaction_speech(bot: "DoppelDiscord", interaction: discord.Interaction, reply: ReplyAssembler, *,
                             with_text: bool = True) -> None:
    parts = split_text(reply.text, TEXT_LIMIT) if with_text else []
    await interaction.edit_original_response(content=parts[0] if parts else "\N{SPEAKER WITH THREE SOUND WAVES}")
    for part in parts[1:]:
        await interaction.followup.send(part)
    if reply.has_speech:
        note = voice_note(reply)
        if not await _sent_as_voice(bot, to_followup(interaction.application_id, interaction.token), note):
            await interaction.followup.send(file=discord.File(io.BytesIO(note.ogg), AUDIO_NAME))
    for text in reply.notes:
        await interaction.followup.send(text)


async def interaction_video(interaction: discord.Interaction, reply: ReplyAssembler) -> None:
    if reply.video is not None:
        await interaction.followup.send(file=discord.File(io.BytesIO(reply.video.mp4), VIDEO_NAME))
