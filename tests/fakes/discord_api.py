"""A fake Discord on 127.0.0.1 that the real discord.py client talks to: REST routes and a websocket gateway.

It keeps users, guilds, channels and messages in memory, records what the bot posts, and lets a test act
as a user: send a message (with a voice-message attachment), or invoke a slash command the bot synced.

    async with FakeDiscord() as fake:
        settings.discord_api_url = fake.api_url   # the gateway URL comes from GET /gateway/bot
        ...
        await fake.send_message(channel, alice, attachments=[voice], flags=IS_VOICE_MESSAGE)
        reply = await fake.wait_for(lambda m: m.channel_id == channel and m.is_voice)
"""
from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from typing import Any, Iterator

from aiohttp import web

from tests.fakes.discord_gateway import Gateway
from tests.fakes.discord_messages import (
    IS_VOICE_MESSAGE,
    ApiError,
    Draft,
    FilePart,
    check_content,
    check_voice_message,
    json_response,
    read_draft,
)
from tests.fakes.discord_state import (
    ALL_PERMISSIONS,
    EPHEMERAL,
    LOADING,
    DiscordState,
    Interaction,
    Posted,
    Upload,
    timestamp,
)

__all__ = ["DROP", "DROP_AFTER", "EPHEMERAL", "IS_VOICE_MESSAGE", "FakeDiscord", "Posted", "Upload"]
DROP = 0  # a failure that is no answer at all: the connection closes before Discord does anything
DROP_AFTER = 1  # Discord does what was asked, then the connection closes before the answer

class FakeDiscord(DiscordState):
    def __init__(self, token: str = "fake-bot-token", *, upload_limit: int = 10 * 1024 * 1024, ack_deadline: float = 3.0) -> None:
        super().__init__()
        self.token = token
        self.upload_limit = upload_limit
        self.ack_deadline = ack_deadline  # Discord forgets an interaction not answered within 3 s
        self.uploads: dict[str, bytes | None] = {}
        self.no_voice_channels: set[int] = set()
        self.requests: list[tuple[str, str]] = []
        self.errors: list[dict] = []
        self.deleted: list[Posted] = []  # messages the bot deleted
        self.failures: list[tuple[str, str, int, float | None]] = []  # (method, path suffix, status, retry_after) to answer next
        self.flaky: dict[str, Iterator[tuple[int, float | None]]] = {}  # method → failures, one before each success
        self.failed_sends = 0  # calls failed by fail_every_send
        self._flaky_failed: set[tuple[str, str]] = set()  # (method, path) whose last flaky call failed
        self.held: dict[tuple[str, str], asyncio.Event] = {}  # (method, path suffix) → gate a test opens
        self.gateway = Gateway(token, self._ready, self._guild_creates)
        self._runner: web.AppRunner | None = None

    # ---- lifecycle ----

    async def __aenter__(self) -> "FakeDiscord":
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        r = app.router
        r.add_get("/gateway", self.gateway.handle)
        api = "/api/v10"
        r.add_get(api + "/gateway", self._get_gateway)
        r.add_get(api + "/gateway/bot", self._get_gateway_bot)
        r.add_get(api + "/users/@me", self._get_me)
        r.add_get(api + "/applications/@me", self._get_application)
        r.add_get(api + "/oauth2/applications/@me", self._get_application)
        r.add_put(api + "/applications/{app}/commands", self._put_commands)
        r.add_put(api + "/applications/{app}/guilds/{guild}/commands", self._put_commands)
        r.add_get(api + "/applications/{app}/commands", self._get_commands)
        r.add_get(api + "/applications/{app}/guilds/{guild}/commands", self._get_commands)
        r.add_post(api + "/users/@me/channels", self._create_dm)
        r.add_get(api + "/channels/{channel}", self._get_channel)
        r.add_post(api + "/channels/{channel}/typing", self._typing)
        r.add_post(api + "/channels/{channel}/attachments", self._request_upload)
        r.add_post(api + "/channels/{channel}/messages", self._create_message)
        r.add_get(api + "/channels/{channel}/messages/{message}", self._get_message)
        r.add_patch(api + "/channels/{channel}/messages/{message}", self._edit_message)
        r.add_post(api + "/interactions/{id}/{token}/callback", self._interaction_callback)
        r.add_post(api + "/webhooks/{app}/{token}", self._followup)
        r.add_get(api + "/webhooks/{app}/{token}/messages/{message}", self._get_webhook_message)
        r.add_patch(api + "/webhooks/{app}/{token}/messages/{message}", self._edit_webhook_message)
        r.add_delete(api + "/webhooks/{app}/{token}/messages/{message}", self._delete_webhook_message)
        r.add_put("/upload/{name}", self._put_upload)
        r.add_get("/attachments/{channel}/{id}/{filename}", self._get_blob)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp's server behind a started site; it has sockets by now
        self.base = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- acting as a user ----

    async def send_message(self, channel_id: int, author: dict, content: str = "", *, attachments: list[Upload] = (),
                           flags: int = 0, mentions: list[dict] = (), reply_to: int | None = None,
                           everywhere: bool = False) -> Posted:
        metas, blobs = [], []
        for up in attachments:
            metas.append(self._attachment(channel_id, up.filename, up.data, up.content_type, up.duration_secs, up.waveform))
            blobs.append(up.data)
        payload = self._message(channel_id, author, content, metas, flags, mentions=list(mentions), reply_to=reply_to)
        posted = self._store(Posted(int(payload["id"]), channel_id, payload, blobs, by_bot=False))
        await self.gateway.dispatch("MESSAGE_CREATE", self._with_guild(payload, author), everywhere=everywhere)
        return posted

    async def invoke(self, name: str, user: dict, channel_id: int, /, everywhere: bool = False, **options: Any) -> Interaction:
        """Invoke a slash command the bot has synced; an Upload option value becomes an attachment option.
        `everywhere`: the interaction reaches every shard's session (every replica)."""
        channel = self.channels[channel_id]
        guild_id = int(channel["guild_id"]) if "guild_id" in channel else None
        command = next((c for c in self.commands.get(guild_id, []) + self.commands.get(None, []) if c["name"] == name), None)
        if command is None:
            raise LookupError(f"the bot has not synced a command called /{name}")
        known = {o["name"]: o for o in command.get("options", [])}
        data: dict = {"id": command["id"], "name": name, "type": 1, "options": [], "resolved": {"attachments": {}}}
        for key, value in options.items():
            if key not in known:
                raise LookupError(f"/{name} has no option '{key}'")
            if isinstance(value, Upload):
                meta = self._attachment(channel_id, value.filename, value.data, value.content_type)
                data["resolved"]["attachments"][meta["id"]] = meta
                value = meta["id"]
            data["options"].append({"name": key, "type": known[key]["type"], "value": value})
        interaction = Interaction(self.snowflake(), "tok-" + secrets.token_urlsafe(24), channel_id, user, time.monotonic())
        self.interactions[interaction.token] = interaction
        payload = {"id": str(interaction.id), "application_id": str(self.application_id), "type": 2, "data": data,
                   "token": interaction.token, "version": 1, "channel_id": str(channel_id), "channel": channel,
                   "locale": "en-US", "app_permissions": str(ALL_PERMISSIONS), "attachment_size_limit": self.upload_limit,
                   "entitlements": [], "authorizing_integration_owners": {"0": str(guild_id)} if guild_id else {"1": user["id"]},
                   "context": 0 if guild_id else 1}
        if guild_id is not None:
            payload["guild_id"] = str(guild_id)
            payload["guild_locale"] = "en-US"
            member = dict(self.members.get((guild_id, int(user["id"]))) or self.join(guild_id, user))
            member["permissions"] = str(self._member_permissions(guild_id, member))
            payload["member"] = member
        else:
            payload["user"] = user
        await self.gateway.dispatch("INTERACTION_CREATE", payload, everywhere=everywhere)
        return interaction

    def fail(self, method: str, path_suffix: str, status: int, *, retry_after: float | None = None, times: int = 1) -> None:
        """Answer the next `times` requests matching method and path suffix with a 429 (`retry_after`), a 5xx,
        DROP or DROP_AFTER."""
        self.failures.extend([(method, path_suffix, status, retry_after)] * times)

    def hold(self, method: str, path_suffix: str) -> asyncio.Event:
        """Keep matching requests waiting (recorded in `requests` on arrival) until `release`."""
        gate = self.held[(method, path_suffix)] = asyncio.Event()
        return gate

    def release(self, method: str, path_suffix: str) -> None:
        gate = self.held.pop((method, path_suffix), None)
        if gate is not None:
            gate.set()

    def fail_every_send(self, method: str, failures: list[tuple[int, float | None]]) -> None:
        """Every `method` call on a channel's messages (or one message) that follows a success there fails, with the next of `failures`
        in turn: each send succeeds only when retried."""
        self.flaky[method] = itertools.cycle(failures)

    def _flaky_failure(self, request: web.Request) -> tuple[int, float | None] | None:
        if request.method not in self.flaky or not request.path.startswith("/api/v10/channels/") \
                or "/messages" not in request.path:
            return None
        key = (request.method, request.path)
        if key in self._flaky_failed:
            self._flaky_failed.discard(key)
            return None
        self._flaky_failed.add(key)
        self.failed_sends += 1
        return next(self.flaky[request.method])

    # ---- REST ----

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        self.requests.append((request.method, request.path))
        needs_auth = request.path.startswith("/api/v10/") and "/webhooks/" not in request.path and "/interactions/" not in request.path
        if needs_auth and request.headers.get("Authorization") != f"Bot {self.token}":
            return json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        for (method, suffix), gate in list(self.held.items()):
            if request.method == method and request.path.endswith(suffix):
                await gate.wait()
        failure = self._flaky_failure(request)
        for i, (method, suffix, status, retry_after) in enumerate(self.failures):
            if failure is None and request.method == method and request.path.endswith(suffix):
                del self.failures[i]
                failure = status, retry_after
                break
        if failure is not None:
            status, retry_after = failure
            if status == DROP_AFTER:
                await handler(request)
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            await request.read()
            if status == DROP:
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            if status == 429:  # Discord's rate limit answer; "Via" tells discord.py it is not a Cloudflare ban
                limited = json_response({"message": "You are being rate limited.", "retry_after": retry_after,
                                         "global": False}, status=429)
                limited.headers.update({"Via": "1.1 google", "X-RateLimit-Scope": "user"})
                return limited
            return json_response({"message": "500: Internal Server Error", "code": 0}, status=status)
        try:
            return await handler(request)
        except ApiError as exc:
            self.errors.append({"path": request.path, "code": exc.code, "message": exc.message})
            return exc.response()

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.gateway_url})

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        return json_response({"url": self.gateway_url, "shards": 1, "session_start_limit":
                                  {"total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": 1}})

    async def _get_me(self, request: web.Request) -> web.Response:
        return json_response({**self.bot, "verified": True, "mfa_enabled": False, "flags": 0})

    async def _get_application(self, request: web.Request) -> web.Response:
        owner = {"id": "1", "username": "owner", "discriminator": "0", "avatar": None, "global_name": "owner"}
        return json_response({"id": str(self.application_id), "name": "doppel", "description": "", "icon": None,
                                  "bot_public": True, "bot_require_code_grant": False, "owner": owner, "verify_key": "0" * 64,
                                  "flags": 0, "rpc_origins": [], "summary": "", "team": None, "bot": self.bot})

    def _check_app(self, request: web.Request) -> None:
        if request.match_info["app"] != str(self.application_id):
            raise ApiError(404, 10002, "Unknown Application")

    async def _put_commands(self, request: web.Request) -> web.Response:
        self._check_app(request)
        guild = int(request.match_info["guild"]) if "guild" in request.match_info else None
        stored = []
        for cmd in await request.json():
            if not isinstance(cmd.get("name"), str) or not 1 <= len(cmd["name"]) <= 32 or cmd["name"] != cmd["name"].lower():
                raise ApiError(400, 50035, "Invalid Form Body", {"name": {"_errors": [{"code": "APPLICATION_COMMAND_INVALID_NAME",
                                                                                        "message": "Command name is invalid"}]}})
            stored.append({**cmd, "id": str(self.snowflake()), "application_id": str(self.application_id), "version": "1",
                           "type": cmd.get("type", 1), "description": cmd.get("description", ""),
                           "default_member_permissions": cmd.get("default_member_permissions"),
                           "guild_id": str(guild) if guild else None})
        self.commands[guild] = stored
        return json_response(stored)

    async def _get_commands(self, request: web.Request) -> web.Response:
        self._check_app(request)
        guild = int(request.match_info["guild"]) if "guild" in request.match_info else None
        return json_response(self.commands.get(guild, []))

    def _channel(self, request: web.Request) -> tuple[int, dict]:
        cid = int(request.match_info["channel"])
        if cid not in self.channels:
            raise ApiError(404, 10003, "Unknown Channel")
        return cid, self.channels[cid]

    async def _create_dm(self, request: web.Request) -> web.Response:
        body = await request.json()
        user = next((m["user"] for m in self.members.values() if m["user"]["id"] == str(body.get("recipient_id"))), None)
        if user is None:
            raise ApiError(400, 50007, "Cannot send messages to this user")
        return json_response(self.channels[self.dm_channel(user)])

    async def _get_channel(self, request: web.Request) -> web.Response:
        return json_response(self._channel(request)[1])

    async def _typing(self, request: web.Request) -> web.Response:
        self._channel(request)
        return web.Response(status=204)

    async def _request_upload(self, request: web.Request) -> web.Response:
        self._channel(request)
        out = []
        for item in (await request.json()).get("files", []):
            if int(item.get("file_size", 0)) > self.upload_limit:
                raise ApiError(413, 40005, "Request entity too large")
            name = f"{secrets.token_hex(8)}/{item['filename']}"
            self.uploads[name] = None
            out.append({"id": item.get("id", 0), "upload_url": f"{self.base}/upload/{name.replace('/', '%2F')}", "upload_filename": name})
        return json_response({"attachments": out})

    async def _put_upload(self, request: web.Request) -> web.Response:
        name = request.match_info["name"].replace("%2F", "/")
        if name not in self.uploads:
            return web.Response(status=403, text="upload URL is not valid")
        self.uploads[name] = await request.read()
        return web.Response(status=200)

    async def _get_blob(self, request: web.Request) -> web.Response:
        data = self.blobs.get(int(request.match_info["id"]))
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    async def _build(self, draft: Draft, channel_id: int, *, webhook: bool = False, interaction: dict | None = None) -> Posted:
        """Check and store a new message the bot posts in channel_id."""
        payload, metas, blobs = draft.payload, [], []
        pairs: list[tuple[dict, FilePart]] = []
        for meta in payload.get("attachments") or []:
            index = int(meta["id"])
            if meta.get("uploaded_filename"):
                data = self.uploads.get(meta["uploaded_filename"])
                if data is None:
                    raise ApiError(400, 50146, "Uploaded file not found.")
                part = FilePart(meta.get("filename", "file"), _guess_type(meta.get("filename", "")), data)
            elif index in draft.files:
                part = draft.files[index]
            else:
                raise ApiError(400, 50035, "Invalid Form Body", {f"attachments.{index}": {"_errors": [
                    {"code": "ATTACHMENT_NOT_FOUND", "message": "Attachment data not found"}]}})
            if len(part.data) > self.upload_limit:
                raise ApiError(413, 40005, "Request entity too large")
            pairs.append((meta, part))
        if len(pairs) < len(draft.files):
            # files sent without an attachments entry still count, the way the API treats them
            for _index, part in sorted(draft.files.items()):
                if not any(int(m["id"]) == index for m, _ in pairs):
                    pairs.append(({"id": index, "filename": part.filename}, part))
        flags = int(payload.get("flags") or 0)
        if flags & IS_VOICE_MESSAGE:
            check_voice_message(payload, pairs, channel_id not in self.no_voice_channels)
        check_content(payload, len(pairs))
        for meta, part in pairs:
            metas.append(self._attachment(channel_id, meta.get("filename") or part.filename, part.data, part.content_type,
                                          meta.get("duration_secs"), meta.get("waveform")))
            blobs.append(part.data)
        reference = (payload.get("message_reference") or {}).get("message_id")
        message = self._message(channel_id, self.bot, payload.get("content") or "", metas, flags,
                                reply_to=int(reference) if reference else None,
                                webhook_id=self.application_id if webhook else None, interaction=interaction)
        return self._store(Posted(int(message["id"]), channel_id, message, blobs))

    async def _create_message(self, request: web.Request) -> web.Response:
        cid, _ = self._channel(request)
        draft = await read_draft(request)
        nonce = str(draft.payload.get("nonce") or "")
        if nonce and draft.payload.get("enforce_nonce"):
            for earlier in self.messages.values():
                if earlier.by_bot and earlier.channel_id == cid and earlier.payload.get("nonce") == nonce:
                    return json_response(earlier.payload)  # Discord's answer to a nonce it has seen: that message
        posted = await self._build(draft, cid)
        if nonce:
            posted.payload["nonce"] = nonce
        if self.gateway.current is not None:  # the bot hears its own messages, as on Discord
            await self.gateway.dispatch("MESSAGE_CREATE", self._with_guild(posted.payload, self.bot))
        return json_response(posted.payload)

    async def _get_message(self, request: web.Request) -> web.Response:
        posted = self.messages.get(int(request.match_info["message"]))
        if posted is None:
            raise ApiError(404, 10008, "Unknown Message")
        return json_response(posted.payload)

    async def _edit(self, request: web.Request, posted: Posted | None) -> web.Response:
        if posted is None:
            raise ApiError(404, 10008, "Unknown Message")
        if posted.is_voice:
            raise ApiError(400, 50162, "Voice messages cannot be edited.")
        draft = await read_draft(request)
        for key in ("content", "embeds", "components"):
            if key in draft.payload:
                posted.payload[key] = draft.payload[key] or ([] if key != "content" else "")
        for _index, part in sorted(draft.files.items()):
            meta = self._attachment(posted.channel_id, part.filename, part.data, part.content_type)
            posted.payload["attachments"].append(meta)
            posted.files.append(part.data)
        if "content" in draft.payload:
            check_content(posted.payload, len(posted.payload["attachments"]))
        posted.payload["flags"] = posted.flags & ~LOADING
        posted.payload["edited_timestamp"] = timestamp()
        posted.edits += 1
        await self._notify()
        return json_response(posted.payload)

    async def _edit_message(self, request: web.Request) -> web.Response:
        posted = self.messages.get(int(request.match_info["message"]))
        if posted is not None and not posted.by_bot:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        return await self._edit(request, posted)

    def _interaction(self, token: str) -> Interaction:
        interaction = self.interactions.get(token)
        if interaction is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        return interaction

    async def _interaction_callback(self, request: web.Request) -> web.Response:
        interaction = self.interactions.get(request.match_info["token"])
        if interaction is None or str(interaction.id) != request.match_info["id"]:
            raise ApiError(404, 10062, "Unknown interaction")
        if interaction.response_type is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if time.monotonic() - interaction.created > self.ack_deadline:
            raise ApiError(404, 10062, "Unknown interaction")
        if request.content_type.startswith("multipart/"):
            draft = await read_draft(request)
            body, files = draft.payload, draft.files
        else:
            body, files = await request.json(), {}
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        meta = {"id": str(interaction.id), "type": 2, "user": interaction.user, "authorizing_integration_owners": {}}
        if kind == 5:
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            message = self._message(interaction.channel_id, self.bot, "", [], flags, webhook_id=self.application_id, interaction=meta)
            posted = self._store(Posted(int(message["id"]), interaction.channel_id, message))
        elif kind == 4:
            # an immediate reply is checked like any message
            posted = await self._build(Draft(data, files), interaction.channel_id, webhook=True, interaction=meta)
        else:
            raise ApiError(400, 50035, "Invalid Form Body", {"type": {"_errors": [{"code": "BASE_TYPE_CHOICES",
                                                                                    "message": "Value must be one of {4, 5}."}]}})
        interaction.response_type = kind
        interaction.original_id = posted.id
        return json_response({"interaction": {"id": str(interaction.id), "type": 2, "response_message_id": str(posted.id),
                                                   "response_message_loading": kind == 5,
                                                   "response_message_ephemeral": bool(posted.flags & EPHEMERAL)},
                                  "resource": {"type": kind, "message": posted.payload}})

    async def _followup(self, request: web.Request) -> web.Response:
        interaction = self._interaction(request.match_info["token"])
        if interaction.response_type is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        draft = await read_draft(request)
        original = self.messages.get(interaction.original_id or 0)
        if original is not None and original.flags & LOADING:
            # Discord turns the "thinking…" placeholder of a deferred reply into the first follow-up
            posted = await self._build(draft, interaction.channel_id, webhook=True, interaction=original.payload.get("interaction_metadata"))
            del self.messages[posted.id]
            posted.payload["id"], posted.id = original.payload["id"], original.id
            self.messages[original.id] = posted
        else:
            posted = await self._build(draft, interaction.channel_id, webhook=True)
        return json_response(posted.payload)

    def _webhook_message(self, request: web.Request) -> Posted | None:
        interaction = self._interaction(request.match_info["token"])
        ref = request.match_info["message"]
        return self.messages.get(interaction.original_id if ref == "@original" else int(ref))

    async def _get_webhook_message(self, request: web.Request) -> web.Response:
        posted = self._webhook_message(request)
        if posted is None:
            raise ApiError(404, 10008, "Unknown Message")
        return json_response(posted.payload)

    async def _edit_webhook_message(self, request: web.Request) -> web.Response:
        return await self._edit(request, self._webhook_message(request))

    async def _delete_webhook_message(self, request: web.Request) -> web.Response:
        posted = self._webhook_message(request)
        if posted is None:
            raise ApiError(404, 10008, "Unknown Message")
        del self.messages[posted.id]
        self.deleted.append(posted)
        return web.Response(status=204)


def _guess_type(filename: str) -> str:
    lower = filename.lower()
    for ext, kind in ((".ogg", "audio/ogg"), (".mp4", "video/mp4"), (".wav", "audio/wav"), (".txt", "text/plain")):
        if lower.endswith(ext):
            return kind
    return "application/octet-stream"
