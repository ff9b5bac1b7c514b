"""The chat page: a turn is posted as a recording, a file or text; its frames stream back as server-sent events."""
from __future__ import annotations

import logging
import re
import secrets
from contextlib import aclosing

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from adapters.media import encode_wav
from bot.common.access import AccessPolicy
from bot.common.avatars import list_avatars
from bot.common.dialogue import Incoming
from bot.common.ratelimit import RateLimiter
from bot.common.replies import ReplyAssembler
from bot.common.slots import ReplySlots, Ticket, busy_note
from bot.web.context import SSE_HEADERS, WebContext, back_with_notice, sse, web_message
from bot.web.security import address_key, check_csrf, client_address, session_id, web_user
from bot.web.turns import TURN_ID, Turn, TurnBook
from bot.web.uploads import AUDIO, read_form, take_file
from core.errors import BadInput, DoppelError, NotAllowed, UnknownAvatar, VoiceNotReady
from core.types import (AudioFrame, ConversationKey, Frame, NoteFrame, ReplyDone, SentenceFrame, SpeechDone,
                        TranscriptFrame, VideoFrame, VideoPartFrame)

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
        self.per_address = RateLimiter(settings.web_rate_limit_per_address)
        # each new cookie becomes a stored user: a client dropping its cookie every time makes only so many
        newcomers = settings.web_new_visitors_per_address
        self.new_visitors = RateLimiter(1 if newcomers > 0 else 0, burst=newcomers or None)
        self.slots = ReplySlots(settings.web_replies_at_once, settings.web_max_in_line)
        self.turns = TurnBook()

    def routes(self) -> list[Route]:
        return [
            Route("/", self.page),
            Route("/chat/turn", self.turn, methods=["POST"]),
            Route("/chat/turn/{turn_id}", self.resume),
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
        """A new turn, or (the same turn id posted again) the one already made: it is joined, never made twice."""
        limit = self.ctx.services.settings.web_max_audio_bytes
        form = await read_form(request, limit)
        user = web_user(request)
        turn_id = str(form.get("turn") or "") or secrets.token_urlsafe(12)
        if not TURN_ID.match(turn_id):
            raise BadInput("That turn id is not one this page makes.")
        turn = self.turns.get(user, turn_id)
        if turn is None:
            turn = await self._start(request, form, user, turn_id)
        return await self._stream(turn, 0)

    async def resume(self, request: Request) -> Response:
        """The rest of a turn, for a page whose connection dropped: from the event after the last it read."""
        turn = self.turns.get(web_user(request), request.path_params["turn_id"])
        if turn is None:
            return JSONResponse({"code": "unknown_turn", "message": "That answer is no longer available."}, status_code=404)
        after = request.query_params.get("after", "0")
        return await self._stream(turn, int(after) if after.isdigit() else 0)

    async def _start(self, request: Request, form: FormData, user: str, turn_id: str) -> Turn:
        upload = await take_file(form, "audio", AUDIO, self.ctx.services.settings.web_max_audio_bytes, required=False)
        text = str(form.get("text") or "").strip()
        if upload is None and not text:
            raise BadInput("Record or upload a voice message, or type something.")
        address = client_address(request)
        await self.admit(request, user, address)
        await self.remember_address(user, address)
        speak = form.get("speak", "1") != "0"
        msg = Incoming(user_id=user, chat_id=user, audio=upload[1] if upload else None,
                       text=None if upload else text, display_name=f"web visitor from {address}")
        ticket = self.slots.join()  # Busy when the line is full: refused now, not after minutes
        return self.turns.start(user, turn_id, lambda turn: self._produce(turn, ticket, msg, speak))

    async def admit(self, request: Request, user: str, address: str) -> None:
        """The same access rules as the bots, held by the client's address too, since a cookie can be dropped."""
        users = self.ctx.services.users
        if not (await self.access.decide(session_id(request))).allowed:  # type: ignore[arg-type]  # the session is made before any chat page is served
            raise NotAllowed()
        by_address = await users.get(address_key(address))
        if by_address is not None and not by_address.allowed:
            raise NotAllowed()
        self.per_address.check(address)
        self.limiter.check(user)
        if await users.get(user) is None:
            # each new cookie becomes a stored user: a client dropping its cookie every time gets only a few
            self.new_visitors.check(address)

    async def remember_address(self, user: str, address: str) -> None:
        # where an admin's Deny of this visitor reaches: their address as well as their cookie
        chats = self.ctx.services.chats
        if (await chats.get(user)).settings.get("address") != address:
            await chats.set(user, address=address)

    async def _stream(self, turn: Turn, after: int) -> Response:
        # wait for the first event: a bad recording or an unready voice is refused with a plain error
        # response instead of a stream that opens and fails at once
        await self.turns.first_event(turn)
        if after == 0 and turn.error is not None and len(turn.events) == 1:
            raise turn.error
        return StreamingResponse(self.turns.follow(turn, after), media_type="text/event-stream",
                                 headers={**SSE_HEADERS, "X-Turn-Id": turn.id})

    async def _produce(self, turn: Turn, ticket: Ticket, msg: Incoming, speak: bool) -> None:
        try:
            async for place in ticket.places():
                turn.add(sse("queued", {"place": place, "message": busy_note(place)}))
            reply = ReplyAssembler()
            async with aclosing(self.ctx.dialogue.reply(msg, speak=speak, video_parts=True)) as frames:
                async for frame in frames:
                    reply.feed(frame)
                    turn.add(self._event(msg.user_id, frame, reply))
        except DoppelError as exc:
            log.info("web turn failed: %s (%s)", exc.code, exc.detail)
            turn.fail(exc, sse("failed", {"code": exc.code, "message": web_message(exc)}))
        except Exception:
            log.exception("web turn crashed")
            turn.fail(DoppelError(), sse("failed", {"code": "error", "message": DoppelError.default_message}))
        finally:
            ticket.leave()

    def _event(self, user: str, frame: Frame, reply: ReplyAssembler) -> bytes:
        if isinstance(frame, TranscriptFrame):
            t = frame.transcript
            return sse("transcript", {"text": t.text, "language": t.language, "seconds": round(t.audio_seconds, 2)})
        if isinstance(frame, SentenceFrame):
            return sse("sentence", {"index": frame.index, "text": frame.text})
        if isinstance(frame, AudioFrame):
            # WAV: every browser plays it, and it costs no encoding time on the reply's critical path
            key = self.ctx.media.put(encode_wav(frame.audio), "audio/wav", user)
            return sse("audio", {"index": frame.index, "url": f"/media/{key}", "seconds": round(frame.audio.seconds, 2)})
        if isinstance(frame, SpeechDone):
            if not reply.has_speech:
                return b": no speech\n\n"
            # the parts joined, for one player per answer once the parts have played
            speech = reply.speech()
            key = self.ctx.media.put(encode_wav(speech), "audio/wav", user)
            return sse("speech", {"url": f"/media/{key}", "seconds": round(speech.seconds, 2)})
        if isinstance(frame, VideoFrame):
            key = self.ctx.media.put(frame.mp4, "video/mp4", user)
            return sse("video", {"url": f"/media/{key}", "seconds": round(frame.seconds, 2)})
        if isinstance(frame, VideoPartFrame):
            key = self.ctx.media.put(frame.mp4, "video/mp4", user)
            return sse("video_part", {"index": frame.index, "offset": round(frame.offset, 3), "url": f"/media/{key}",
                                      "seconds": round(frame.seconds, 2)})
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
