"""Slash commands for talking: /ask, /say, /reset, /mydata, /forget, /help."""
from __future__ import annotations

import io
import json

import discord
from discord import app_commands

from bot.common.dialogue import Incoming
from bot.common.replies import ReplyAssembler
from bot.common.speech import say as speak_text
from bot.discord import delivery
from bot.discord.gate import admit, chat_key, user_key
from core.errors import UnknownUser
from core.types import ConversationKey


def _incoming(interaction: discord.Interaction, text: str) -> Incoming:
    return Incoming(user_key(interaction.user), chat_key(interaction.guild_id, interaction.channel_id or 0), text=text,
                    display_name=interaction.user.display_name)


@app_commands.command(name="ask", description="Ask something; the answer comes as text and a voice message")
@app_commands.describe(text="What you want to ask")
async def ask(interaction: discord.Interaction, text: str) -> None:
    bot = interaction.client
    await admit(bot, interaction.user, interaction.guild_id)
    # the model takes longer than the 3 s Discord waits for a first answer: defer, then edit and follow up
    await interaction.response.defer(thinking=True)
    await delivery.run_turn(bot, _incoming(interaction, text), speak=True,
                            on_speech=lambda reply: delivery.interaction_speech(bot, interaction, reply),
                            on_video=lambda reply: delivery.interaction_video(interaction, reply),
                            # the deferred "thinking…" placeholder says the place; the answer's text replaces it
                            busy=delivery.BusyNote(lambda text: interaction.edit_original_response(content=text),
                                                   remove=False))


@app_commands.command(name="say", description="Speak a text in a voice")
@app_commands.describe(text="The words to speak", voice="A voice name (see /voice); empty: this chat's voice")
async def say(interaction: discord.Interaction, text: str, voice: str | None = None) -> None:
    bot = interaction.client
    await admit(bot, interaction.user, interaction.guild_id)
    await interaction.response.defer(thinking=True)
    msg = _incoming(interaction, text)
    reply = ReplyAssembler()
    reply.chunks.append(await bot.queue.run(msg.user_id, lambda: speak_text(bot.dialogue, msg, voice=voice)))
    await delivery.interaction_speech(bot, interaction, reply, with_text=False)


@app_commands.command(name="reset", description="Forget our conversation in this chat")
async def reset(interaction: discord.Interaction) -> None:
    bot = interaction.client
    await admit(bot, interaction.user, interaction.guild_id, rate=False)
    msg = _incoming(interaction, "")
    removed = await bot.services.history.reset(ConversationKey(msg.user_id, msg.chat_id))
    await interaction.response.send_message(f"Forgotten: {removed} message(s) of our conversation here.", ephemeral=True)


@app_commands.command(name="mydata", description="Get everything the bot stores about you, as a JSON file")
async def mydata(interaction: discord.Interaction) -> None:
    bot = interaction.client
    try:
        data = await bot.services.history.export_user(user_key(interaction.user))
    except UnknownUser:
        await interaction.response.send_message("I store nothing about you.", ephemeral=True)
        return
    blob = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
    await interaction.response.send_message(f"{len(data['messages'])} stored message(s).", ephemeral=True,
                                            file=discord.File(io.BytesIO(blob), "mydata.json"))


@app_commands.command(name="forget", description="Delete everything the bot stores about you, in every chat")
async def forget(interaction: discord.Interaction) -> None:
    bot = interaction.client
    try:
        removed = await bot.services.history.delete_user(user_key(interaction.user))
    except UnknownUser:
        removed = 0
    await interaction.response.send_message(f"Deleted your data ({removed} message(s)).", ephemeral=True)


HELP = """Send me a voice message (in a DM, or mentioning me or replying to me in a server) and I answer with a voice \
message and its text; a typed message gets a typed answer.
/ask – ask something, answered with text and a voice message
/say – speak a text in a voice
/voice, /persona, /avatar – show or choose them here
/language [code|auto] – the language you speak to me here (en, fr, es ... or auto)
/reset – forget our conversation here
/cancel – stop the answer I am making for you
/mydata – everything I store about you, as a file
/forget – delete it"""

ADMIN_HELP = """
Admin: /add_voice, /train_avatar, /jobs, /cancel JOB, /allow USER, /deny USER, /stats; /roles for a server's managers"""


@app_commands.command(name="help", description="What I understand")
async def help_(interaction: discord.Interaction) -> None:
    bot = interaction.client
    admin = (await bot.access.decide(interaction.user.id)).admin
    await interaction.response.send_message(HELP + (ADMIN_HELP if admin else ""), ephemeral=True)


COMMANDS = (ask, say, reset, mydata, forget, help_)
