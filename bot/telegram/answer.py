"""Answering one user message on Telegram: fetch the recording, run the dialogue in the user's lane, send as frames come.

The text goes first (sent at the first sentence, edited as more arrive), then the voice note, then the video.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiogram import Bot
from aiogram.types import BufferedInputFile, Message, ReplyParameters
from aiogram.utils.chat_action import ChatActionSender

from bot.common.dialogue import Dialogue, Incoming
from bot.common.replies import ReplyAssembler, split_text
from bot.common.userqueue import UserQueue
from bot.telegram import files
from bot.telegram.filters import without_mention
from bot.telegram.video_note import prepare
from bot.wiring import Services
from core.types import NoteFrame, ReplyDone, SentenceFrame, SpeechDone, VideoFrame

TEXT_LIMIT = 4096


def user_key(user_id: int) -> str:
    return f"tg:{user_id}"


def chat_key(chat_id: int) -> str:
    return f"tg:{chat_id}"


@dataclass
class _Sending:
    """Where one reply is in its sending: the text message to edit, and whether the voice is out."""

    text_message: Message | None = None
    shown_text: str = ""
    voice_sent: bool = False
    text_final: bool = False


class Answerer:
    def __init__(self, services: Services, dialogue: Dialogue, queue: UserQueue) -> None:
        self.services = services
        self.dialogue = dialogue
        self.queue = queue

    async def answer(self, message: Message, bot: Bot, *, spoken: bool) -> None:
        """`spoken`: the user sent a recording (answered with voice), else typed (voice only if configured)."""
        settings = self.services.settings
        user = message.from_user
        assert user is not None  # the access middleware lets only messages from users through
        audio = text = None
        if spoken:
            ref = files.speech_of(message)
            if ref is None:
                raise files.UnsupportedMessage()
            audio = await files.download(bot, ref, settings, max_seconds=settings.max_input_seconds)
        else:
            me = await bot.me()
            text = without_mention(message.text or "", me.username or "")
        incoming = Incoming(user_key(user.id), chat_key(message.chat.id), audio=audio, text=text,
                            display_name=user.full_name)
        speak = spoken or settings.reply_voice_to_text
        action = "typing"
        if speak:
            action = "record_video_note" if await self._will_render(incoming) else "record_voice"
        # the status shows from the moment the message is taken, also while it waits its turn in a busy moment
        async with ChatActionSender(bot=bot, chat_id=message.chat.id, action=action,
                                    message_thread_id=message.message_thread_id):
            await self.queue.run(incoming.user_id, lambda: self._reply(message, incoming, speak))

    async def _reply(self, message: Message, incoming: Incoming, speak: bool) -> None:
        reply = ReplyAssembler()
        state = _Sending()
        async for frame in self.dialogue.reply(incoming, speak=speak):
            reply.feed(frame)
            if isinstance(frame, SentenceFrame):
                await self._show_text(message, reply.text, state)
            elif isinstance(frame, SpeechDone):
                # the voice goes out before a talking-head video is rendered
                await self._show_text(message, frame.text, state, final=True)
                await self._send_voice(message, reply, state)
            elif isinstance(frame, VideoFrame):
                await self._send_video(message, frame)
            elif isinstance(frame, NoteFrame):
                await _answer(message, frame.text)
            elif isinstance(frame, ReplyDone):
                await self._show_text(message, frame.text, state, final=True)
                await self._send_voice(message, reply, state)

    async def _will_render(self, incoming: Incoming) -> bool:
        """Whether this answer will come with a video (same precedence as Dialogue: chat, config, persona)."""
        s = self.services
        if s.renderer is None:
            return False
        chat = await s.chats.get(incoming.chat_id)
        avatar = chat.avatar or s.settings.avatar or s.personas.get(chat.persona or s.settings.persona).avatar
        return avatar is not None and avatar != "" and await s.renderer.is_ready(avatar)

    async def _show_text(self, message: Message, text: str, state: _Sending, final: bool = False) -> None:
        if state.text_final:
            return
        parts = split_text(text, TEXT_LIMIT)
        if not parts or (parts[0] == state.shown_text and not (final and len(parts) > 1)):
            return
        # plain text, no parse_mode: a model's stray '*' or '_' can never make Telegram refuse the answer
        if state.text_message is None:
            state.text_message = await _answer(message, parts[0])
        elif parts[0] != state.shown_text:
            await state.text_message.edit_text(parts[0], parse_mode=None)
        state.shown_text = parts[0]
        if final:
            state.text_final = True
            for part in parts[1:]:
                await _answer(message, part)

    async def _send_voice(self, message: Message, reply: ReplyAssembler, state: _Sending) -> None:
        if state.voice_sent or not reply.has_speech:
            return
        ogg, seconds = await asyncio.to_thread(reply.voice_note)
        await message.answer_voice(BufferedInputFile(ogg, "reply.ogg"), duration=max(1, round(seconds)),
                                   reply_parameters=_reply_to(message))
        state.voice_sent = True

    async def _send_video(self, message: Message, frame: VideoFrame) -> None:
        video = await asyncio.to_thread(prepare, frame.mp4, frame.seconds)
        seconds = max(1, round(video.seconds))
        if video.method == "video_note":
            await message.answer_video_note(BufferedInputFile(video.data, "reply.mp4"), length=video.side,
                                            duration=seconds, reply_parameters=_reply_to(message))
        else:
            await message.answer_video(BufferedInputFile(video.data, "reply.mp4"), duration=seconds,
                                       supports_streaming=True, reply_parameters=_reply_to(message))


def _reply_to(message: Message) -> ReplyParameters | None:
    # in a group the answer is threaded under the question; in a private chat it needs no quote
    if message.chat.type == "private":
        return None
    return ReplyParameters(message_id=message.message_id, allow_sending_without_reply=True)


async def _answer(message: Message, text: str) -> Message:
    return await message.answer(text, parse_mode=None, reply_parameters=_reply_to(message))
