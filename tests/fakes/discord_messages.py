"""How the fake Discord reads a message body and checks it the way the real API does.

A create-message request arrives as JSON, or as multipart with `payload_json` and `files[n]` parts, or as
JSON that points at files put earlier through the attachment upload flow. All three end up as one
`Draft`, and `check` answers with the same error codes Discord uses (50006, 50035, 50146, 50159–50173).
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

from aiohttp import web

IS_VOICE_MESSAGE = 1 << 13
SEND_VOICE_MESSAGES = 1 << 46


def json_response(data: object, status: int = 200) -> web.Response:
    # discord.py parses a body as JSON only when the content type is exactly "application/json", as Discord sends it
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json")


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, errors: dict | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def response(self) -> web.Response:
        body: dict = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return json_response(body, status=self.status)


@dataclass
class FilePart:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Draft:
    payload: dict
    files: dict[int, FilePart] = field(default_factory=dict)  # by the index n of files[n]


async def read_draft(request: web.Request) -> Draft:
    if request.content_type.startswith("multipart/"):
        payload: dict = {}
        files: dict[int, FilePart] = {}
        reader = await request.multipart()
        async for part in reader:
            name = part.name or ""
            if name == "payload_json":
                payload = json.loads(await part.text())
            elif name.startswith("files[") and name.endswith("]"):
                index = int(name[6:-1])
                files[index] = FilePart(part.filename or f"file{index}", part.headers.get("Content-Type", "application/octet-stream"),
                                        bytes(await part.read()))
            else:
                raise ApiError(400, 50035, "Invalid Form Body", {name: {"_errors": [{"code": "UNKNOWN_FIELD", "message": "Unknown field."}]}})
        return Draft(payload, files)
    if request.can_read_body:
        try:
            return Draft(await request.json())
        except json.JSONDecodeError:
            raise ApiError(400, 50109, "The request body contains invalid JSON.") from None
    return Draft({})


def _form_error(path: str, code: str, message: str) -> ApiError:
    return ApiError(400, 50035, "Invalid Form Body", {path: {"_errors": [{"code": code, "message": message}]}})


def check_voice_message(payload: dict, attachments: list[tuple[dict, FilePart]], can_send_voice: bool) -> None:
    """The rules the API enforces on a message flagged IS_VOICE_MESSAGE."""
    if not can_send_voice:
        raise ApiError(403, 50173, "You cannot send voice messages in this channel.")
    if payload.get("content") or payload.get("embeds") or payload.get("sticker_ids") or payload.get("components") or payload.get("poll"):
        raise ApiError(400, 50159, "Voice messages do not support additional content.")
    if len(attachments) != 1:
        raise ApiError(400, 50160, "Voice messages must have a single audio attachment.")
    meta, part = attachments[0]
    if not part.content_type.split(";")[0].strip().lower() == "audio/ogg" or not part.data.startswith(b"OggS") \
            or b"OpusHead" not in part.data[:512]:
        raise ApiError(400, 50160, "Voice messages must have a single audio attachment.")
    duration, waveform = meta.get("duration_secs"), meta.get("waveform")
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not duration > 0:
        raise ApiError(400, 50161, "Voice messages must have supporting metadata.")
    if not isinstance(waveform, str):
        raise ApiError(400, 50161, "Voice messages must have supporting metadata.")
    try:
        points = base64.b64decode(waveform, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, 50161, "Voice messages must have supporting metadata.") from None
    if not 0 < len(points) <= 256:
        raise ApiError(400, 50161, "Voice messages must have supporting metadata.")


def check_content(payload: dict, attachment_count: int) -> None:
    content = payload.get("content")
    if content is not None and not isinstance(content, str):
        raise _form_error("content", "STRING_TYPE_CONVERT", "Could not interpret the value as string.")
    if content and len(content) > 2000:
        raise _form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    if not content and not attachment_count and not payload.get("embeds") and not payload.get("sticker_ids") \
            and not payload.get("components") and not payload.get("poll"):
        raise ApiError(400, 50006, "Cannot send an empty message")
