"""Reading posted forms: a size limit before the body is read, CSRF, type checks on each uploaded file, and large
uploads streamed to disk."""
from __future__ import annotations

import asyncio
import shutil
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import AsyncIterator, BinaryIO

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from bot.web.security import check_csrf
from core.errors import BadInput, FileTooLarge

# multipart boundaries and the small text fields that travel beside a file
_FORM_OVERHEAD = 64 * 1024
_PIECE = 1024 * 1024
_MIB = 1024 * 1024


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


class UploadTooLarge(FileTooLarge):
    """Sizes on the web pages are binary megabytes (MiB) everywhere: the limits, the checks in the page, this."""

    def __init__(self, size: int, limit: int) -> None:
        BadInput.__init__(self, f"That file is {size / _MIB:.1f} MiB; the limit is {limit / _MIB:.0f} MiB.")


async def read_form(request: Request, limit: int, *, files: int = 1) -> FormData:
    """Refuses an oversized body from its Content-Length, before any of it is read; uvicorn never
    delivers more than that header promised, so the header is a real bound."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise BadInput("Uploads need a Content-Length header.")
    size = int(declared)
    if size > limit * files + _FORM_OVERHEAD:
        raise UploadTooLarge(size, limit)
    form = await request.form(max_files=files, max_fields=50)
    check_csrf(request, form)
    return form


async def take_file(form: FormData, field: str, accepts: Accepts, limit: int, *, required: bool = True) -> tuple[str, bytes] | None:
    """A small upload (a chat recording, a photo) read into memory, up to `limit` bytes."""
    upload = form.get(field)
    if not isinstance(upload, UploadFile) or not upload.filename:
        if required:
            raise BadInput(f"Please choose {accepts.what}.")
        return None
    name = _checked_name(upload, accepts)
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLarge(upload.size or len(data), limit)
    if not data:
        raise BadInput(f"'{name}' is empty.")
    # the contents are checked by the decoder that uses them (decode_audio, probe): it names what is wrong
    return name, data


@asynccontextmanager
async def upload_folder(data_dir: Path) -> AsyncIterator[Path]:
    """A private folder for one request's large uploads, removed afterwards with whatever was not moved out."""
    root = data_dir / "uploads"
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=root))
    try:
        yield folder
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


async def save_files(form: FormData, field: str, accepts: Accepts, limit: int, folder: Path) -> list[tuple[str, Path]]:
    """Large uploads (admin clips and videos) streamed to files in `folder`, never held in memory whole."""
    uploads = [u for u in form.getlist(field) if isinstance(u, UploadFile) and u.filename]
    if not uploads:
        raise BadInput(f"Please choose {accepts.what}.")
    names = [_checked_name(u, accepts) for u in uploads]
    saved = []
    for i, (name, upload) in enumerate(zip(names, uploads)):
        path = folder / f"{i:03d}{PurePath(name).suffix.lower()}"
        size = await asyncio.to_thread(_copy, upload.file, path, limit)
        if size > limit:
            raise UploadTooLarge(size, limit)
        if size == 0:
            raise BadInput(f"'{name}' is empty.")
        saved.append((name, path))
    return saved


def _copy(source: BinaryIO, path: Path, limit: int) -> int:
    """Copies up to limit + 1 bytes in small pieces; the size copied (over `limit`: the file is too large)."""
    source.seek(0)
    size = 0
    with path.open("wb") as out:
        while size <= limit:
            piece = source.read(min(_PIECE, limit + 1 - size))
            if not piece:
                break
            out.write(piece)
            size += len(piece)
    return size


def _checked_name(upload: UploadFile, accepts: Accepts) -> str:
    name = PurePath(upload.filename or "upload").name
    suffix = PurePath(name).suffix.lower()
    media_type = (upload.content_type or "").split(";")[0].strip().lower()
    if suffix:
        ok = suffix in accepts.extensions
    else:
        ok = media_type.startswith(accepts.media_prefixes)
    if not ok:
        raise BadInput(f"'{name}' is not {accepts.what}.")
    return name
