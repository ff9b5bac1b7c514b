"""Live talk on the web page: the browser's microphone in and the answer's voice out over WebRTC (aiortc).

The page posts an SDP offer to /live/offer under the same session, CSRF and access rules as the chat; the
answer carries our audio track, and the avatar's video track when the page asked for video and the chat's avatar
can talk live (both tracks run on one media clock). Events for the page (partial and final transcripts, the answer's sentences,
interruptions) go over the data channel the page opens. What is said and answered is handled by
`bot.common.live.LiveConversation`; this module only carries media and ends sessions that drop: the
peer connection closing or failing, a data channel closing, or no audio from the browser for a few seconds.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import av
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.common.dialogue import Incoming
from bot.common.live import LiveConfig, LiveConversation, live_face
from bot.web.chat import ChatPages
from bot.web.context import WebContext
from bot.web.live_audio import AnswerAudioTrack, LiveSpeaker
from bot.web.live_clock import MediaClock
from bot.web.live_video import AvatarVideoTrack
from bot.web.security import check_csrf, client_address, web_user
from core.errors import BadInput, DoppelError
from core.turn_taking import TurnConfig

if TYPE_CHECKING:
    from aiortc import RTCDataChannel
    from av import AudioFrame

log = logging.getLogger(__name__)

_MAX_OFFER_BYTES = 64 * 1024  # a browser's offer is a few kilobytes
_CONNECT_SECONDS = 10.0  # a connection that has not carried audio by then is not coming (a failed ICE says so sooner)


class LiveFull(DoppelError):
    code = "live_full"

    def __init__(self, running: int) -> None:
        super().__init__(f"Live talk is full right now ({running} conversations are running). Please try again in a "
                         "few minutes, or use the chat meanwhile.")


@dataclass(eq=False)
class LiveSession:
    id: str
    user: str
    pc: RTCPeerConnection
    conversation: LiveConversation
    voice: AnswerAudioTrack
    face: AvatarVideoTrack | None = None  # the talking head, when an avatar is shown and can talk live
    started: float = field(default_factory=time.monotonic)
    tasks: list[asyncio.Task] = field(default_factory=list)
    channel: RTCDataChannel | None = None  # the page's data channel, once it opened
    pending: list[str] = field(default_factory=list)  # events made before the channel opened
    closing: asyncio.Task | None = None
    closed: bool = False

    def emit(self, event: str, data: dict) -> None:
        message = json.dumps({"event": event, **data}, ensure_ascii=False)
        channel = self.channel
        if channel is not None and channel.readyState == "open":
            channel.send(message)
        elif len(self.pending) < 200:
            self.pending.append(message)


class LiveSessions:
    """The live sessions of this server, at most `limit` at once (0: none allowed)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._sessions: dict[str, LiveSession] = {}

    @property
    def count(self) -> int:
        return len(self._sessions)

    def of(self, user: str) -> list[LiveSession]:
        return [s for s in self._sessions.values() if s.user == user]

    def add(self, session: LiveSession) -> None:
        self._sessions[session.id] = session

    def remove(self, session: LiveSession) -> None:
        self._sessions.pop(session.id, None)

    def all(self) -> list[LiveSession]:
        return list(self._sessions.values())


class LivePages:
    def __init__(self, ctx: WebContext, chat: ChatPages) -> None:
        self.ctx = ctx
        self.chat = chat  # its access rules, rate limits and reply slots hold for live answers too
        settings = ctx.services.settings
        self.sessions = LiveSessions(settings.live_max_sessions)
        self.idle_seconds = settings.live_idle_seconds
        self.config = LiveConfig(turns=TurnConfig(end_seconds=settings.live_end_of_utterance),
                                 partial_seconds=settings.live_partial_seconds)

    def routes(self) -> list[Route]:
        return [Route("/live", self.page), Route("/live/offer", self.offer, methods=["POST"])]

    async def page(self, request: Request) -> Response:
        user = web_user(request)
        avatar = (await self.ctx.dialogue.request_for(Incoming(user_id=user, chat_id=user), speak=False)).avatar
        return self.ctx.render(request, "live.html", avatar=avatar or "", video=bool(avatar))

    async def offer(self, request: Request) -> Response:
        check_csrf(request)
        offer = await _read_offer(request)
        user = web_user(request)
        address = client_address(request)
        await self.chat.admit(request, user, address)
        await self.chat.remember_address(user, address)
        for old in self.sessions.of(user):  # a reloaded page: its old session goes first, without waiting for it to time out
            await self.close(old, "replaced by a new one")
        if self.sessions.count >= self.sessions.limit:
            raise LiveFull(self.sessions.count)
        session = await self._open(user, address, wants_video="m=video" in offer.sdp)
        self.sessions.add(session)
        try:
            answer = await self._connect(session, offer)
        except Exception:
            await self.close(session, "could not connect")
            raise
        log.info("live session %s for %s (%d running)", session.id, user, self.sessions.count)
        return JSONResponse({"sdp": answer.sdp, "type": answer.type, "session": session.id})

    async def _open(self, user: str, address: str, *, wants_video: bool) -> LiveSession:
        clock = MediaClock()  # one timeline for the voice and the face
        voice = AnswerAudioTrack(clock)
        person = Incoming(user_id=user, chat_id=user, display_name=f"web visitor from {address}")
        face, note = await self._face(person, clock) if wants_video else (None, "")
        holder: list[LiveSession] = []
        conversation = LiveConversation(self.ctx.dialogue, person, LiveSpeaker(voice, face),
                                        lambda event, data: holder[0].emit(event, data), self.chat.slots, self.config)
        session = LiveSession(secrets.token_urlsafe(9), user, RTCPeerConnection(), conversation, voice, face)
        holder.append(session)
        if note:
            session.emit("note", {"text": note})
        return session

    async def _face(self, person: Incoming, clock: MediaClock) -> tuple[AvatarVideoTrack | None, str]:
        """The chat's avatar as a video track, or why there is none (the answer is then spoken only)."""
        avatar = (await self.ctx.dialogue.request_for(person, speak=False)).avatar
        if not avatar:
            return None, ""
        try:
            stream = await live_face(self.ctx.services, avatar)
        except DoppelError as exc:
            return None, f"{exc.message} Live talk goes on with the voice only."
        if stream is None:
            return None, "This server draws no live faces; live talk goes on with the voice only."
        return AvatarVideoTrack(stream, clock), ""

    async def _connect(self, session: LiveSession, offer: RTCSessionDescription) -> RTCSessionDescription:
        pc = session.pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and not session.tasks:
                for transceiver in pc.getTransceivers():
                    if transceiver.receiver.track is track:
                        _hear_at_once(transceiver.receiver)
                session.tasks.append(asyncio.create_task(self._listen(session, track)))

        @pc.on("datachannel")
        def on_datachannel(channel) -> None:
            session.channel = channel

            @channel.on("open")
            def flush() -> None:
                for message in session.pending:
                    channel.send(message)
                session.pending.clear()

            @channel.on("close")
            def closed() -> None:
                self._close_soon(session, "the page closed its events")

            if channel.readyState == "open":
                flush()

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            if state in ("failed", "closed"):
                self._close_soon(session, f"connection {state}")
            elif state == "disconnected":
                # a brief network change may come back; a tab that went away does not
                await asyncio.sleep(self.idle_seconds)
                if pc.connectionState == "disconnected":
                    self._close_soon(session, "connection lost")

        await pc.setRemoteDescription(offer)
        if not any(t.kind == "audio" for t in pc.getTransceivers()):
            raise BadInput("The page offered no microphone audio.")
        pc.addTrack(session.voice)
        if session.face is not None:
            if any(t.kind == "video" for t in pc.getTransceivers()):
                pc.addTrack(session.face)
            else:
                session.face.stop()
                session.face = None
        await session.conversation.start()
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription

    async def _listen(self, session: LiveSession, track: MediaStreamTrack) -> None:
        """The microphone, resampled to 16 kHz mono, into the conversation; silence from the browser still
        arrives as frames, so a long gap means the page is gone."""
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16_000)
        wait = max(self.idle_seconds, _CONNECT_SECONDS)  # the first frame comes once ICE and DTLS are through
        while True:
            try:
                frame = await asyncio.wait_for(track.recv(), wait)
                wait = self.idle_seconds
            except (TimeoutError, MediaStreamError):
                self._close_soon(session, "no audio from the page")
                return
            for out in resampler.resample(cast("AudioFrame", frame)):  # an audio track's frames
                session.conversation.hear(out.to_ndarray().reshape(-1))

    def _close_soon(self, session: LiveSession, reason: str) -> None:
        if not session.closed and session.closing is None:
            session.closing = asyncio.create_task(self.close(session, reason))

    async def close(self, session: LiveSession, reason: str) -> None:
        """Frees everything the session holds: its tasks, its answer (and reply slot), the peer connection."""
        if session.closed:
            return
        session.closed = True
        self.sessions.remove(session)
        for task in session.tasks:
            task.cancel()
        await asyncio.gather(*session.tasks, return_exceptions=True)
        await session.conversation.close()
        await session.pc.close()
        if session.face is not None:
            session.face.stop()  # its drawing thread ends with it
        log.info("live session %s ended after %.0f s: %s (%d running)", session.id, time.monotonic() - session.started,
                 reason, self.sessions.count)

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close(s, "server stopping") for s in self.sessions.all()), return_exceptions=True)


def _hear_at_once(receiver) -> None:
    """aiortc holds four 20 ms packets of incoming audio before it decodes the first (100 ms, prefetch=4), which
    would make every barge-in that much later; live talk takes each packet once the next one is in."""
    from aiortc.jitterbuffer import JitterBuffer

    if hasattr(receiver, "_RTCRtpReceiver__jitter_buffer"):  # aiortc 1.16 (pinned); elsewhere its default stays
        receiver._RTCRtpReceiver__jitter_buffer = JitterBuffer(capacity=16, prefetch=0)


async def _read_offer(request: Request) -> RTCSessionDescription:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > _MAX_OFFER_BYTES:
        raise BadInput("That offer is too large.")
    body = await request.body()
    if len(body) > _MAX_OFFER_BYTES:
        raise BadInput("That offer is too large.")
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("type") != "offer" or not isinstance(data.get("sdp"), str):
        raise BadInput("Live talk needs a WebRTC offer from the live page.")
    return RTCSessionDescription(sdp=data["sdp"], type="offer")
