"""What the fake Discord knows: users, guilds, channels, messages and commands, and their JSON payloads.

Payloads carry the fields discord.py reads, in Discord's shapes (snowflake ids as strings, ISO timestamps).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from dataclasses import dataclass, field
from typing import Callable

from tests.fakes.discord_gateway import Session, shard_of
from tests.fakes.discord_messages import IS_VOICE_MESSAGE, SEND_VOICE_MESSAGES

DISCORD_EPOCH_MS = 1_420_070_400_000
LOADING = 1 << 7
EPHEMERAL = 1 << 6
ALL_PERMISSIONS = (1 << 51) - 1


def timestamp() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


@dataclass
class Upload:
    """A file as the test gives it to a user's message or command."""

    filename: str
    data: bytes
    content_type: str
    duration_secs: float | None = None
    waveform: str | None = None


@dataclass
class Posted:
    """A message as the fake stored it, with the bytes of its attachments."""

    id: int
    channel_id: int
    payload: dict
    files: list[bytes] = field(default_factory=list)
    by_bot: bool = True
    edits: int = 0

    @property
    def content(self) -> str:
        return self.payload.get("content") or ""

    @property
    def flags(self) -> int:
        return int(self.payload.get("flags") or 0)

    @property
    def is_voice(self) -> bool:
        return bool(self.flags & IS_VOICE_MESSAGE)

    @property
    def attachments(self) -> list[dict]:
        return self.payload.get("attachments") or []


@dataclass
class Interaction:
    id: int
    token: str
    channel_id: int
    user: dict
    created: float
    response_type: int | None = None
    original_id: int | None = None


class DiscordState:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.base = ""  # http://127.0.0.1:<port>, once the server listens
        self.bot = self.add_user("doppel", bot=True)
        self.application_id = self.snowflake()
        self.guilds: dict[int, dict] = {}
        self.channels: dict[int, dict] = {}
        self.members: dict[tuple[int, int], dict] = {}
        self.messages: dict[int, Posted] = {}
        self.blobs: dict[int, bytes] = {}
        self.commands: dict[int | None, list[dict]] = {}  # by guild id; None = global
        self.interactions: dict[str, Interaction] = {}
        self._changed = asyncio.Condition()

    @property
    def api_url(self) -> str:
        return self.base + "/api/v10"

    @property
    def gateway_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/gateway"

    # ---- the world a test sets up ----

    def snowflake(self) -> int:
        return ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (next(self._ids) & 0x3FFFFF)

    def add_user(self, name: str, *, bot: bool = False) -> dict:
        return {"id": str(self.snowflake()), "username": name, "discriminator": "0", "global_name": name,
                "avatar": None, "bot": bot}

    def add_guild(self, name: str, owner: dict) -> int:
        gid = self.snowflake()
        everyone = {"id": str(gid), "name": "@everyone", "permissions": str(1 << 11 | 1 << 10 | SEND_VOICE_MESSAGES | 1 << 15),
                    "position": 0, "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
        self.guilds[gid] = {"id": str(gid), "name": name, "owner_id": owner["id"], "roles": [everyone], "icon": None,
                            "features": [], "emojis": [], "stickers": [], "member_count": 1, "large": False}
        self.join(gid, self.bot)
        return gid

    def add_role(self, guild_id: int, name: str, permissions: int = 0) -> int:
        rid = self.snowflake()
        self.guilds[guild_id]["roles"].append({"id": str(rid), "name": name, "permissions": str(permissions), "position": 1,
                                               "color": 0, "hoist": False, "managed": False, "mentionable": True, "flags": 0})
        return rid

    def join(self, guild_id: int, user: dict, roles: list[int] = ()) -> dict:
        member = {"user": user, "roles": [str(r) for r in roles], "joined_at": timestamp(), "deaf": False, "mute": False,
                  "flags": 0, "nick": None}
        self.members[(guild_id, int(user["id"]))] = member
        return member

    def add_text_channel(self, guild_id: int, name: str) -> int:
        cid = self.snowflake()
        self.channels[cid] = {"id": str(cid), "type": 0, "guild_id": str(guild_id), "name": name, "position": len(self.channels),
                              "permission_overwrites": [], "nsfw": False, "parent_id": None, "topic": None}
        return cid

    def dm_channel(self, user: dict) -> int:
        for cid, ch in self.channels.items():
            if ch["type"] == 1 and ch["recipients"][0]["id"] == user["id"]:
                return cid
        cid = self.snowflake()
        self.channels[cid] = {"id": str(cid), "type": 1, "recipients": [user], "last_message_id": None}
        return cid

    async def wait_for(self, predicate: Callable[[Posted], bool], timeout: float = 180.0) -> Posted:
        """The first stored message (sent or edited) for which predicate holds, waiting for it if needed."""
        async with self._changed:
            found: list[Posted] = []

            def ready() -> bool:
                found[:] = [m for m in self.messages.values() if predicate(m)]
                return bool(found)

            await asyncio.wait_for(self._changed.wait_for(ready), timeout)
            return found[0]

    def bot_messages(self, channel_id: int) -> list[Posted]:
        return [m for m in self.messages.values() if m.channel_id == channel_id and m.by_bot]

    # ---- payload builders ----

    def _attachment(self, channel_id: int, filename: str, data: bytes, content_type: str,
                    duration: float | None = None, waveform: str | None = None) -> dict:
        aid = self.snowflake()
        self.blobs[aid] = data
        url = f"{self.base}/attachments/{channel_id}/{aid}/{filename}"
        meta = {"id": str(aid), "filename": filename, "size": len(data), "url": url, "proxy_url": url, "content_type": content_type}
        if duration is not None:
            meta["duration_secs"] = duration
        if waveform is not None:
            meta["waveform"] = waveform
        return meta

    def _message(self, channel_id: int, author: dict, content: str, attachments: list[dict], flags: int, *,
                 mentions: list[dict] = (), reply_to: int | None = None, webhook_id: int | None = None,
                 interaction: dict | None = None) -> dict:
        payload = {"id": str(self.snowflake()), "channel_id": str(channel_id), "author": author, "content": content,
                   "timestamp": timestamp(), "edited_timestamp": None, "tts": False, "mention_everyone": False,
                   "mentions": list(mentions), "mention_roles": [], "attachments": attachments, "embeds": [],
                   "pinned": False, "type": 0, "flags": flags, "components": []}
        if reply_to is not None and reply_to in self.messages:
            original = self.messages[reply_to].payload
            payload["type"] = 19
            payload["message_reference"] = {"message_id": str(reply_to), "channel_id": str(channel_id), "type": 0}
            payload["referenced_message"] = original
            if not any(m["id"] == original["author"]["id"] for m in payload["mentions"]):
                payload["mentions"].append(original["author"])
        if webhook_id is not None:
            payload["webhook_id"] = str(webhook_id)
        if interaction is not None:
            payload["interaction_metadata"] = interaction
        return payload

    def _with_guild(self, payload: dict, author: dict) -> dict:
        channel = self.channels[int(payload["channel_id"])]
        if "guild_id" not in channel:
            return payload
        gid = int(channel["guild_id"])
        member = {k: v for k, v in (self.members.get((gid, int(author["id"]))) or self.join(gid, author)).items() if k != "user"}
        return {**payload, "guild_id": str(gid), "member": member}

    def _member_permissions(self, guild_id: int, member: dict) -> int:
        guild = self.guilds[guild_id]
        if guild["owner_id"] == member["user"]["id"]:
            return ALL_PERMISSIONS
        value = 0
        for role in guild["roles"]:
            if role["id"] == str(guild_id) or role["id"] in member["roles"]:
                value |= int(role["permissions"])
        return value

    def _ready(self, session: Session) -> dict:
        return {"v": 10, "user": {**self.bot, "verified": True, "mfa_enabled": False, "flags": 0}, "session_id": session.id,
                "resume_gateway_url": self.gateway_url,
                "guilds": [{"id": str(g), "unavailable": True} for g in self.guilds if _on(session, g)],
                "application": {"id": str(self.application_id), "flags": 0}, "private_channels": [], "relationships": [],
                "session_type": "normal", "shard": list(session.shard)}

    def _guild_creates(self, session: Session) -> list[dict]:
        out = []
        for gid, guild in self.guilds.items():
            if not _on(session, gid):
                continue
            members = [m for (g, _), m in self.members.items() if g == gid]
            channels = [{k: v for k, v in c.items() if k != "guild_id"} for c in self.channels.values() if c.get("guild_id") == str(gid)]
            out.append({**guild, "unavailable": False, "joined_at": timestamp(), "member_count": len(members), "members": members,
                        "channels": channels, "threads": [], "presences": [], "voice_states": [], "stage_instances": [],
                        "guild_scheduled_events": [], "soundboard_sounds": []})
        return out

    def _store(self, posted: Posted) -> Posted:
        self.messages[posted.id] = posted
        asyncio.get_running_loop().create_task(self._notify())
        return posted

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def _on(session: Session, guild_id: int) -> bool:
    """Whether the guild's events go to this session's shard."""
    return shard_of(guild_id, session.shard[1]) == session.shard[0]
