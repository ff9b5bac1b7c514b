"""Sending a Discord voice message, which discord.py can read but has no public call to send.

A voice message is a message with the IS_VOICE_MESSAGE flag, no other content, and exactly one
attachment whose part is `audio/ogg` (Opus) and whose attachment entry carries `duration_secs` and a
`waveform` (base64 of up to 256 amplitude bytes). discord.py's `File` always uploads as
application/octet-stream and its attachment entries carry neither field, so we build the multipart body
ourselves and send it through the library's own HTTP client: its routes, token, rate limits and retries.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from discord.http import HTTPClient, Route

from core import audio as audio_ops
from core.types import Audio

IS_VOICE_MESSAGE = 1 << 13
MAX_WAVEFORM_POINTS = 256
FILENAME = "voice-message.ogg"


@dataclass(frozen=True)
class VoiceNote:
    ogg: bytes  # OGG/Opus
    seconds: float
    waveform: bytes  # one amplitude byte (0..255) per point

    def __post_init__(self) -> None:
        # the API refuses these (50160/50161); failing here names the mistake instead
        if not self.ogg.startswith(b"OggS"):
            raise ValueError("a voice message must be OGG/Opus")
        if not self.seconds > 0:
            raise ValueError("a voice message needs a positive duration")
        if not 0 < len(self.waveform) <= MAX_WAVEFORM_POINTS:
            raise ValueError(f"a waveform has 1 to {MAX_WAVEFORM_POINTS} points, not {len(self.waveform)}")

    @classmethod
    def from_audio(cls, audio: Audio) -> "VoiceNote":
        from adapters.media import encode_ogg_opus

        return cls(encode_ogg_opus(audio), audio.seconds, audio_ops.waveform_bytes(audio, MAX_WAVEFORM_POINTS))


def to_channel(channel_id: int) -> Route:
    return Route("POST", "/channels/{channel_id}/messages", channel_id=channel_id)


def to_followup(application_id: int, token: str) -> Route:
    """An interaction's follow-up: the webhook route discord.py's own follow-ups use."""
    return Route("POST", "/webhooks/{webhook_id}/{webhook_token}", webhook_id=application_id, webhook_token=token)


def voice_form(note: VoiceNote, *, reply_to: int | None = None) -> list[dict]:
    payload: dict = {
        "flags": IS_VOICE_MESSAGE,
        "attachments": [{
            "id": "0",
            "filename": FILENAME,
            "duration_secs": round(note.seconds, 3),
            "waveform": base64.b64encode(note.waveform).decode("ascii"),
        }],
    }
    if reply_to is not None:
        payload["message_reference"] = {"message_id": str(reply_to), "fail_if_not_exists": False}
    return [
        {"name": "payload_json", "value": json.dumps(payload), "content_type": "application/json"},
        {"name": "files[0]", "value": note.ogg, "filename": FILENAME, "content_type": "audio/ogg"},
    ]


async def send_voice_message(http: HTTPClient, route: Route, note: VoiceNote, *, reply_to: int | None = None) -> dict:
    """Post `note` as a voice message on `route` (to_channel or to_followup); returns the message payload.

    Errors come back as discord.HTTPException with Discord's code, e.g. 50173 (Forbidden) where the
    channel does not allow voice messages.
    """
    return await http.request(route, form=voice_form(note, reply_to=reply_to))
