"""Reading posted forms: a size limit before the body is read, CSRF, and type checks on each uploaded file."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from bot.web.security import check_csrf
from core.errors import BadInput, FileTooLarge

# multipart boundaries and the small text fields that travel beside a file
_FORM_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class Accepts:
    """What one kind of upload may be: by extension, or by a declared media type when the name has none."""

    what: str
    extensions: frozenset[str]
    media_prefixes: tuple[str, ...]


AUDIO = Accepts(
    "an audio file (OGG, Opus, MP3, M4A, WAV, FLAC or WebM)",
    frozenset({".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".wav", ".flac", ".webm", ".mp4"}),
    ("audio/", "video/webm", "video/ogg"),
)
VIDEO = Accepts(
    "a video file (MP4, WebM, MOV or MKV)",
    frozenset({".mp4", ".webm", ".mov", ".mkv", ".m4v"}),
    ("video/",),
)

PHOTO = Accepts(
    "a photo (JPEG, PNG or WebP)",
    frozenset({".jpg", ".jpeg", ".png", ".webp"}),
    ("image/jpeg", "image/png", "image/webp"),
)


async def read_form(request: Request, limit: int, *, files: int = 1) -> FormData:
    """Refuses an oversized body from its Content-Length, before any of it is read; uvicorn never
    delivers more than that header promised, so the header is a real bound."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise BadInput("Uploads need a Content-Length header.")
    size = int(declared)
    if size > limit * files + _FORM_OVERHEAD:
        raise FileTooLarge(size, limit)
    form = await request.form(max_files=files, max_fields=50)
    check_csrf(request, form)
    return form


async def take_file(form: FormData, field: str, accepts: Accepts, limit: int, *, required: bool = True) -> tuple[str, bytes] | None:
    upload = form.get(field)
    if not isinstance(upload, UploadFile) or not upload.filename:
        if required:
            raise BadInput(f"Please choose {accepts.what}.")
        return None
    return await _checked(upload, accepts, limit)


async def take_files(form: FormData, field: str, accepts: Accepts, limit: int) -> list[tuple[str, bytes]]:
    uploads = [u for u in form.getlist(field) if isinstance(u, UploadFile) and u.filename]
    if not uploads:
        raise BadInput(f"Please choose {accepts.what}.")
    return [await _checked(u, accepts, limit) for u in uploads]


async def _checked(upload: UploadFile, accepts: Accepts, limit: int) -> tuple[str, bytes]:
    name = PurePath(upload.filename or "upload").name
    suffix = PurePath(name).suffix.lower()
    media_type = (upload.content_type or "").split(";")[0].strip().lower()
    if suffix:
        ok = suffix in accepts.extensions
    else:
        ok = media_type.startswith(accepts.media_prefixes)
    if not ok:
        raise BadInput(f"'{name}' is not {accepts.what}.")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(upload.size or len(data), limit)
    if not data:
        raise BadInput(f"'{name}' is empty.")
    # the contents are checked by the decoder that uses them (decode_audio, probe): it names what is wrong
    return name, data
