"""Reading users' attachments: size and kind are checked from Discord's metadata before a byte is downloaded."""
from __future__ import annotations

import discord

from core.errors import BadInput, FileTooLarge

AUDIO_SUFFIXES = (".ogg", ".oga", ".opus", ".mp3", ".m4a", ".wav", ".webm", ".flac", ".aac")
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".m4v")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def is_audio(attachment: discord.Attachment) -> bool:
    kind = (attachment.content_type or "").lower()
    return kind.startswith("audio/") or attachment.filename.lower().endswith(AUDIO_SUFFIXES)


def is_video(attachment: discord.Attachment) -> bool:
    kind = (attachment.content_type or "").lower()
    return kind.startswith("video/") or attachment.filename.lower().endswith(VIDEO_SUFFIXES)


def is_image(attachment: discord.Attachment) -> bool:
    kind = (attachment.content_type or "").lower()
    return kind.startswith("image/") or attachment.filename.lower().endswith(IMAGE_SUFFIXES)


async def read_audio(attachment: discord.Attachment, limit: int) -> bytes:
    if not is_audio(attachment):
        raise BadInput(f"I can't listen to '{attachment.filename}'. Please send a voice message or an audio file "
                       "(OGG, MP3, M4A, WAV or WebM).")
    return await _read(attachment, limit)


async def read_face(attachment: discord.Attachment, limit: int) -> bytes:
    """A video of someone talking, or a photo of their face."""
    if not (is_video(attachment) or is_image(attachment)):
        raise BadInput(f"'{attachment.filename}' is neither a video nor a photo. Please attach an MP4, MOV or WebM video "
                       "of the person talking, or a JPEG or PNG photo of their face.")
    return await _read(attachment, limit)


async def read_any(attachment: discord.Attachment, limit: int) -> bytes:
    """A file whose content the caller checks itself (model weights): only the size limit applies here."""
    return await _read(attachment, limit)


async def _read(attachment: discord.Attachment, limit: int) -> bytes:
    if attachment.size > limit:
        raise FileTooLarge(attachment.size, limit)
    try:
        return await attachment.read()
    except discord.HTTPException as exc:
        raise BadInput("I could not download that file from Discord. Please send it again.", detail=repr(exc)) from exc
