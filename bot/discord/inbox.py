"""Messages the bot answers without a command: anything in a DM, and in a server a message that mentions
the bot or replies to it. A voice message (or audio file) gets a voice message back; text gets text.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from bot.common.dialogue import Incoming
from bot.discord import delivery, files
from bot.discord.errors import tell
from bot.discord.gate import admit, chat_key, user_key
from core.errors import BadInput

if TYPE_CHECKING:
    from bot.discord.app import DoppelDiscord


def addressed_to_me(bot: "DoppelDiscord", message: discord.Message) -> bool:
    if message.author.bot or bot.user is None:
        return False
    if message.guild is None:
        return True
    if bot.user in message.mentions:
        return True
    ref = message.reference.resolved if message.reference is not None else None
    return isinstance(ref, discord.Message) and ref.author.id == bot.user.id


def _question_text(bot: "DoppelDiscord", message: discord.Message) -> str:
    text = message.content
    assert bot.user is not None  # logged in before any message arrives
    for mention in (f"<@{bot.user.id}>", f"<@!{bot.user.id}>"):
        text = text.replace(mention, " ")
    return " ".join(text.split())


async def on_message(bot: "DoppelDiscord", message: discord.Message) -> None:
    if not addressed_to_me(bot, message):
        return
    async with bot.claims.answering(message) as mine:
        if not mine:
            return  # answered already (a replayed event), or being answered by another replica
        try:
            await _answer(bot, message)
        except Exception as exc:  # every failure becomes one reply; errors.tell logs what is unexpected
            await tell(message, exc, bot.error_replies)


async def _answer(bot: "DoppelDiscord", message: discord.Message) -> None:
    await admit(bot, message.author, message.guild.id if message.guild else None)
    text = _question_text(bot, message)
    audio = None
    if message.attachments:
        if len(message.attachments) > 1:
            raise BadInput("Please send one voice message at a time.")
        audio = await files.read_audio(message.attachments[0], bot.services.settings.discord_max_download)
    elif not text:
        return  # a bare mention: nothing to answer
    incoming = Incoming(user_key(message.author), chat_key(message.guild.id if message.guild else None, message.channel.id),
                        audio=audio, text=None if audio else text, display_name=message.author.display_name)
    speak = audio is not None or bot.services.settings.reply_voice_to_text
    async with message.channel.typing():
        await delivery.run_turn(bot, incoming, speak=speak,
                                # a voice message cannot carry text, so the answer's text goes beside it
                                on_speech=lambda reply: delivery.message_speech(bot, message, reply, with_text=True),
                                on_video=lambda reply: delivery.message_video(message, reply),
                                busy=delivery.BusyNote(lambda text: message.reply(text, mention_author=False)))
