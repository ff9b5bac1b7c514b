"""The chat page: a turn is posted as a recording, a file or text; its frames stream back as server-sent events."""
from __future__ import annotations

import logging
import re
from typing import AsyncIterator

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from adapters.media import encode_wav
from bot.common.access import AccessPolicy
from bot.common.avatars import list_avatars
from bot.common.dialogue import Incoming
from bot.common.ratelimit import RateLimiter
from bot.web.context import SSE_HEADERS, WebContext, back_with_notice, sse
from bot.web.security import check_csrf, session_id, web_user
from bot.web.uploads import AUDIO, read_form, take_file
from core.errors import BadInput, DoppelError, NotAllowed, UnknownAvatar, VoiceNotReady
from core.types import AudioFrame, ConversationKey, Frame, NoteFrame, ReplyDone, SentenceFrame, TranscriptFrame, VideoFrame

log = logging.getLogger(__name__)

# enough for a long conversation on screen; the model sees only its own budget
_SHOWN_HISTORY_TOKENS = 20_000


class ChatPages:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        settings = ctx.services.settings
        # the same rules as the bots: an admin's deny holds here too, and a closed bot (an allowlist) stays closed
        self.access = AccessPolicy(settings, ctx.services.users, "web")
        self.limiter = RateLimiter(settings.rate_limit_per_minute)

    def routes(self) -> list[Route]:
        return [
            Route("/", self.page),
            Route("/chat/turn", self.turn, methods=["POST"]),
            Route("/chat/forget", self.forget, methods=["POST"]),
            Route("/chat/settings", self.choose, methods=["POST"]),
            Route("/media/{key}", self.media),
        ]

    async def page(self, request: Request) -> Response:
        s = self.ctx.services
        user = web_user(request)
        history = await s.history.load(ConversationKey(user, user), _SHOWN_HISTORY_TOKENS)
        chat = await s.chats.get(user)
        return self.ctx.render(request, "chat.html", history=history, max_mb=s.settings.web_max_audio_bytes // (1024 * 1024),
                               voices=[v.name for v in await s.voices.list() if v.ready], personas=s.personas.names(),
                               avatars=[a.name for a in await list_avatars(s) if a.ready],
                               voice=chat.voice or "", persona=chat.persona or s.settings.persona, avatar=chat.avatar or "")

    async def choose(self, request: Request) -> Response:
        """The chat's voice, persona and avatar, as /voice, /persona and /avatar set them on the bots."""
        s = self.ctx.services
        form = await request.form(max_files=0)
        check_csrf(request, form)
        user = web_user(request)
        name = str(form.get("voice") or "")
        if name:
            voice = await s.voices.get(name)  # UnknownVoice names the way to see the voices
            if not voice.ready:
                raise VoiceNotReady(name)
        persona = s.personas.get(str(form.get("persona") or s.settings.persona))  # UnknownPersona lists them
        avatar = str(form.get("avatar") or "")
        if avatar and avatar not in [a.name for a in await list_avatars(s) if a.ready]:
            raise UnknownAvatar(f"There is no ready avatar called '{avatar}'.")
        await s.chats.set(user, voice=name or None, persona=persona.name, avatar=avatar or None)
        said = f"the voice {name!r}" if name else "the standard voice"
        shown = f", shown as {avatar!r}" if avatar else ""
        return back_with_notice(request, f"Answering as '{persona.name}' in {said}{shown}.")

    async def turn(self, request: Request) -> Response:
        limit = self.ctx.services.settings.web_max_audio_bytes
        form = await read_form(request, limit)
        upload = await take_file(form, "audio", AUDIO, limit, required=False)
        text = str(form.get("text") or "").strip()
        if upload is None and not text:
            raise BadInput("Record or upload a voice message, or type something.")
        user = web_user(request)
        if not (await self.access.decide(session_id(request))).allowed:  # type: ignore[arg-type]
            raise NotAllowed()
        self.limiter.check(user)
        speak = form.get("speak", "1") != "0"
        msg = Incoming(user_id=user, chat_id=user, audio=upload[1] if upload else None,
                       text=None if upload else text, display_name="web visitor")
        frames = self.ctx.dialogue.reply(msg, speak=speak).__aiter__()
        # wait for the first frame here: a bad recording or an unready voice is refused with a plain
        # error response instead of a stream that opens and fails at once
        try:
            first = await frames.__anext__()
        except BaseException:
            await frames.aclose()
            raise
        return StreamingResponse(self._events(user, first, frames), media_type="text/event-stream", headers=SSE_HEADERS)

    async def _events(self, user: str, first: Frame, frames: AsyncIterator[Frame]) -> AsyncIterator[bytes]:
        try:
            yield self._event(user, first)
            async for frame in frames:
                yield self._event(user, frame)
        except DoppelError as exc:
            log.info("web turn failed: %s (%s)", exc.code, exc.detail)
            yield sse("failed", {"code": exc.code, "message": exc.message})
        except Exception:
            log.exception("web turn crashed")
            yield sse("failed", {"code": "error", "message": DoppelError.default_message})
        finally:
            # a closed tab cancels the rest of the reply
            await frames.aclose()  # type: ignore[attr-defined]

    def _event(self, user: str, frame: Frame) -> bytes:
        if isinstance(frame, TranscriptFrame):
            t = frame.transcript
            return sse("transcript", {"text": t.text, "language": t.language, "seconds": round(t.audio_seconds, 2)})
        if isinstance(frame, SentenceFrame):
            return sse("sentence", {"index": frame.index, "text": frame.text})
        if isinstance(frame, AudioFrame):
            # WAV: every browser plays it, and it costs no encoding time on the reply's critical path
            key = self.ctx.media.put(encode_wav(frame.audio), "audio/wav", user)
            return sse("audio", {"index": frame.index, "url": f"/media/{key}", "seconds": round(frame.audio.seconds, 2)})
        if isinstance(frame, VideoFrame):
            key = self.ctx.media.put(frame.mp4, "video/mp4", user)
            return sse("video", {"url": f"/media/{key}", "seconds": round(frame.seconds, 2)})
        if isinstance(frame, NoteFrame):
            return sse("note", {"text": frame.text})
        if isinstance(frame, ReplyDone):
            return sse("done", {"text": frame.text, "timings": {t.stage: round(t.seconds, 3) for t in frame.timings}})
        return b": unknown frame\n\n"

    async def forget(self, request: Request) -> Response:
        check_csrf(request, await request.form(max_files=0))
        user = web_user(request)
        await self.ctx.services.history.reset(ConversationKey(user, user))
        return RedirectResponse("/", status_code=303)

    async def media(self, request: Request) -> Response:
        item = self.ctx.media.get(request.path_params["key"], web_user(request))
        if item is None:
            return Response("This reply is no longer available.", status_code=404, media_type="text/plain")
        headers = {"Cache-Control": "private, max-age=3600", "Accept-Ranges": "bytes"}
        # Safari plays <audio>/<video> only from servers that answer byte ranges
        wanted = _byte_range(request.headers.get("range"), len(item.data))
        if wanted is None:
            return Response(item.data, media_type=item.media_type, headers=headers)
        start, end = wanted
        headers["Content-Range"] = f"bytes {start}-{end}/{len(item.data)}"
        return Response(item.data[start:end + 1], status_code=206, media_type=item.media_type, headers=headers)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first range of a "bytes=a-b" header, clipped to the data; None: send it all."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)(?:,.*)?", (header or "").strip())
    if not match or size == 0 or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # "bytes=-500": the last 500
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(size - 1, int(last) if last else size - 1)
    return (start, end) if start <= end else None
