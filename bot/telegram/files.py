"""What a message carries that the bot can listen to, and fetching it within the Bot API's download limit."""
from __future__ import annotations

import io
from dataclasses import dataclass

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Message

from adapters.settings import Settings
from core.errors import AudioTooLong, BadInput, FileTooLarge

# a local Bot API server serves files up to 2000 MB
LOCAL_SERVER_LIMIT = 2000 * 1024 * 1024


class UnsupportedMessage(BadInput):
    code = "unsupported_message"
    default_message = ("I can answer voice messages, audio files, video notes and text. "
                       "Please send one of those.")


class TooBigToFetch(FileTooLarge):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(size, limit)
        # Telegram counts in binary megabytes; say it the way its own limit is quoted ("20 MB")
        self.message = (f"That file is {size / 2**20:.1f} MB, and Telegram lets bots fetch files up to "
                        f"{limit / 2**20:.0f} MB. Please send a shorter recording.")


@dataclass(frozen=True)
class MediaRef:
    file_id: str
    size: int | None
    kind: str  # voice | audio | video_note | video | document
    name: str = ""
    seconds: float | None = None  # the duration Telegram states for it, when it states one


def speech_of(message: Message) -> MediaRef | None:
    """The recording in a message the bot should answer: a voice note, audio, video note or an audio/video file."""
    if message.voice:
        return MediaRef(message.voice.file_id, message.voice.file_size, "voice", seconds=message.voice.duration)
    if message.audio:
        return MediaRef(message.audio.file_id, message.audio.file_size, "audio", message.audio.file_name or "",
                        seconds=message.audio.duration)
    if message.video_note:
        return MediaRef(message.video_note.file_id, message.video_note.file_size, "video_note", seconds=message.video_note.duration)
    if message.video:
        return MediaRef(message.video.file_id, message.video.file_size, "video", message.video.file_name or "",
                        seconds=message.video.duration)
    doc = message.document
    if doc and (doc.mime_type or "").startswith(("audio/", "video/")):
        return MediaRef(doc.file_id, doc.file_size, "document", doc.file_name or "")
    return None


def video_of(message: Message) -> MediaRef | None:
    """A video for avatar training: a video, a video note or a video file sent as a document."""
    if message.video:
        return MediaRef(message.video.file_id, message.video.file_size, "video", message.video.file_name or "video.mp4")
    if message.video_note:
        return MediaRef(message.video_note.file_id, message.video_note.file_size, "video_note", "note.mp4")
    doc = message.document
    if doc and (doc.mime_type or "").startswith("video/"):
        return MediaRef(doc.file_id, doc.file_size, "document", doc.file_name or "video.mp4")
    return None


def photo_of(message: Message) -> MediaRef | None:
    """A portrait for a photo avatar: a photo (its largest size) or an image sent as a file."""
    if message.photo:
        best = max(message.photo, key=lambda p: p.width * p.height)
        return MediaRef(best.file_id, best.file_size, "photo", "photo.jpg")
    doc = message.document
    if doc and (doc.mime_type or "").startswith("image/"):
        return MediaRef(doc.file_id, doc.file_size, "document", doc.file_name or "photo.jpg")
    return None


def download_limit(settings: Settings) -> int:
    return max(settings.telegram_max_download, LOCAL_SERVER_LIMIT if settings.telegram_api_local else 0)


async def download(bot: Bot, ref: MediaRef, settings: Settings, *, max_seconds: float | None = None) -> bytes:
    """`max_seconds`: a recording Telegram says is longer is refused from that, before anything is fetched."""
    limit = download_limit(settings)
    if ref.size is not None and ref.size > limit:
        raise TooBigToFetch(ref.size, limit)  # refused before fetching anything
    if max_seconds is not None and ref.seconds is not None and ref.seconds > max_seconds:
        raise AudioTooLong(ref.seconds, max_seconds)
    try:
        file = await bot.get_file(ref.file_id)
    except TelegramBadRequest as exc:
        if "too big" in exc.message.lower():
            raise TooBigToFetch(ref.size or limit + 1, limit) from exc
        raise BadInput("I could not fetch that file from Telegram. Please send it again.", detail=exc.message) from exc
    if file.file_size is not None and file.file_size > limit:
        raise TooBigToFetch(file.file_size, limit)
    if not file.file_path:
        raise BadInput("Telegram did not give me that file. Please send it again.")
    buf = io.BytesIO()
    await bot.download_file(file.file_path, buf, timeout=120)
    return buf.getvalue()
