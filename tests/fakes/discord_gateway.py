"""The websocket half of the fake Discord: HELLO, IDENTIFY → READY, heartbeats, dispatches, RESUME with replay.

Events are numbered per session and kept, so a client that drops and resumes with its last sequence
number gets every dispatch it missed, as Discord's gateway does. A client that identifies with a shard
([shard_id, shard_count]) gets only its shard's events: a guild's go to shard (guild_id >> 22) % shard_count,
direct messages to shard 0.
"""
from __future__ import annotations

import asyncio
import json
import secrets
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import WSMsgType, web

DISPATCH, HEARTBEAT, IDENTIFY, RESUME, RECONNECT, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 0, 1, 2, 6, 7, 9, 10, 11


class Connection:
    """One websocket; zlib-stream compressed when the client asked for it, like the real gateway."""

    def __init__(self, ws: web.WebSocketResponse, compress: bool) -> None:
        self.ws = ws
        self._zlib = zlib.compressobj() if compress else None
        self._lock = asyncio.Lock()

    async def send(self, payload: dict) -> None:
        data = json.dumps(payload, separators=(",", ":"))
        async with self._lock:
            if self.ws.closed:
                return
            if self._zlib is None:
                await self.ws.send_str(data)
            else:
                # one shared stream per connection; each payload ends on a sync flush (the Z_SYNC_FLUSH suffix)
                chunk = self._zlib.compress(data.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
                await self.ws.send_bytes(chunk)


@dataclass
class Session:
    id: str
    intents: int
    seq: int = 0
    events: list[dict] = field(default_factory=list)
    conn: Connection | None = None
    shard: tuple[int, int] = (0, 1)  # (shard_id, shard_count)


@dataclass
class GatewayLog:
    identifies: int = 0
    resumes: int = 0
    heartbeats: int = 0
    closes: list[int] = field(default_factory=list)


class Gateway:
    def __init__(self, token: str, ready: Callable[[Session], dict], guild_creates: Callable[[Session], list[dict]],
                 heartbeat_ms: int = 41_250) -> None:
        self.token = token
        self.ready_payload = ready
        self.guild_creates = guild_creates
        self.heartbeat_ms = heartbeat_ms
        self.sessions: dict[str, Session] = {}
        self.current: Session | None = None
        self.shards: dict[int, Session] = {}  # shard id → its live session
        self.log = GatewayLog()
        self.connected = asyncio.Event()
        self.refused_intents = 0  # intents the application is not granted (privileged ones not enabled in the portal)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Connection(ws, request.query.get("compress") == "zlib-stream")
        await conn.send({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_ms}, "s": None, "t": None})
        session: Session | None = None
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            payload = json.loads(msg.data)
            op, d = payload.get("op"), payload.get("d")
            if op == HEARTBEAT:
                self.log.heartbeats += 1
                await conn.send({"op": HEARTBEAT_ACK, "d": None, "s": None, "t": None})
            elif op == IDENTIFY:
                if d.get("token") != self.token:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                if int(d.get("intents", 0)) & self.refused_intents:
                    await ws.close(code=4014, message=b"Disallowed intent(s).")
                    break
                self.log.identifies += 1
                shard = d.get("shard") or [0, 1]
                session = Session(secrets.token_hex(16), int(d.get("intents", 0)), shard=(int(shard[0]), int(shard[1])))
                self.sessions[session.id] = session
                self.current = self.shards[session.shard[0]] = session
                session.conn = conn
                await self._emit(session, "READY", self.ready_payload(session))
                for guild in self.guild_creates(session):
                    await self._emit(session, "GUILD_CREATE", guild)
                self.connected.set()
            elif op == RESUME:
                session = self.sessions.get(d.get("session_id", ""))
                if session is None or d.get("token") != self.token:
                    await conn.send({"op": INVALID_SESSION, "d": False, "s": None, "t": None})
                    continue
                self.log.resumes += 1
                last = int(d.get("seq") or 0)
                session.conn = conn
                self.current = self.shards[session.shard[0]] = session
                # replay what the client missed, in order, then confirm
                for event in [e for e in session.events if e["s"] > last]:
                    await conn.send(event)
                await self._emit(session, "RESUMED", {})
                self.connected.set()
        if session is not None and session.conn is conn:
            session.conn = None
        self.log.closes.append(ws.close_code or 0)
        return ws

    async def _emit(self, session: Session, name: str, data: Any) -> None:
        session.seq += 1
        event = {"op": DISPATCH, "t": name, "s": session.seq, "d": data}
        session.events.append(event)
        if session.conn is not None:
            await session.conn.send(event)

    async def dispatch(self, name: str, data: Any, *, everywhere: bool = False) -> None:
        """Send an event to the bot (to the shard it belongs to), or keep it for the replay if the bot is between
        connections. `everywhere`: to every shard's session, as when a replica resumes a session another one had."""
        if self.current is None:
            raise RuntimeError("no gateway session: the bot has not identified yet")
        if everywhere:
            for session in list(self.shards.values()):
                await self._emit(session, name, data)
            return
        await self._emit(self._session_for(data), name, data)

    def _session_for(self, data: Any) -> Session:
        count = self.current.shard[1] if self.current is not None else 1
        guild_id = data.get("guild_id") if isinstance(data, dict) else None
        shard = shard_of(int(guild_id), count) if guild_id else 0
        session = self.shards.get(shard) or self.current
        assert session is not None
        return session

    async def drop(self, code: int = 4000) -> None:
        """Close the live socket as a network failure would; the session stays resumable."""
        session = self.current
        if session is None or session.conn is None:
            return
        conn, session.conn = session.conn, None
        self.connected.clear()
        await conn.ws.close(code=code, message=b"connection dropped by the fake")

    async def close_all(self) -> None:
        for session in self.sessions.values():
            if session.conn is not None:
                await session.conn.ws.close(code=1001)


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord sends a guild's events to."""
    return (guild_id >> 22) % shard_count
