"""A fake Telegram Bot API server on 127.0.0.1 that speaks the real wire protocol.

Methods arrive as POST /bot<token>/<method> with a JSON, urlencoded or multipart body (uploads as parts,
referenced directly or by "attach://name"); answers are {"ok": true, "result": ...} or
{"ok": false, "error_code": ..., "description": ...} like the real server. getUpdates keeps unconfirmed
updates until a later offset confirms them and long-polls for new ones; with a webhook set it refuses
(409) and posts updates to the webhook instead, retrying until the bot answers 2xx. Files are served
from /file/bot<token>/<path>.

Tests inject users' messages (`text_update`, `voice_update`, ...) and read what the bot sent (`sent`).
"""
from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import aiohttp
from aiohttp import web

CHAT_ACTIONS = {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
                "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note"}
MARKDOWN_V2_RESERVED = set("_*[]()~`>#+-=|{}.!")


DROP = 0  # a failure that is no answer at all: the connection closes


class ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class Gate(asyncio.Event):
    deliver = True


@dataclass
class Sent:
    """One thing the bot sent: the method, its plain fields and the bytes of any uploaded files."""

    method: str
    chat_id: int | str | None
    fields: dict[str, Any]
    files: dict[str, bytes]
    message_id: int | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def text(self) -> str:
        return str(self.fields.get("text") or self.fields.get("caption") or "")


class FakeTelegram:
    def __init__(self, token: str = "123456:TEST-token", *, bot_id: int = 123456, username: str = "doppel_test_bot") -> None:
        self.token = token
        self.bot_user = {"id": bot_id, "is_bot": True, "first_name": "Doppel", "username": username,
                         "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}
        self.updates: list[dict] = []  # unconfirmed, oldest first
        self.delivered: list[int] = []  # update ids handed out by getUpdates or the webhook, in order
        self.sent: list[Sent] = []
        self.calls: list[tuple[str, dict]] = []
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id → (file_path, data)
        self.messages: dict[tuple[int | str, int], dict] = {}
        self.webhook: dict | None = None
        self.held: dict[str, Gate] = {}  # method → gate a test opens
        self.menus: dict[str, list[str]] = {}  # setMyCommands: scope (as JSON) → command names
        self.failures: dict[str, list[tuple[int, int | None]]] = {}  # method → (status, retry_after) to answer next
        self.flaky: dict[str, Iterator[tuple[int, int | None]]] = {}  # method → failures, one before each success
        self.failed_sends = 0  # calls failed by fail_every_send
        self._flaky_failed: set[tuple[str, str]] = set()  # (method, chat) whose last flaky call failed
        self._upload_names: dict[str, str] = {}
        self._update_ids = itertools.count(1000)
        self._message_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._webhook_task: asyncio.Task | None = None
        self.base_url = ""

    # ---- life cycle ----

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp's server behind a started site; it has sockets by now
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        for method in list(self.held):
            self.release(method, deliver=False)
        if self._webhook_task is not None:
            self._webhook_task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- what tests do ----

    def add_file(self, data: bytes, folder: str = "documents", suffix: str = "") -> tuple[str, str]:
        file_id = "F" + secrets.token_hex(12)
        path = f"{folder}/file_{len(self.files)}{suffix}"
        self.files[file_id] = (path, data)
        return file_id, file_id[-10:]

    def text_update(self, user_id: int, text: str, **kw: Any) -> dict:
        entities = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}] if text.startswith("/") else []
        for word in text.split():
            if word.startswith("@"):
                entities.append({"type": "mention", "offset": text.index(word), "length": len(word)})
        fields: dict[str, Any] = {"text": text}
        if entities:
            fields["entities"] = entities
        return self.message_update(user_id, fields, **kw)

    def voice_update(self, user_id: int, data: bytes, *, duration: int = 3, file_size: int | None = None, **kw: Any) -> dict:
        file_id, unique = self.add_file(data, "voice", ".oga")
        voice = {"file_id": file_id, "file_unique_id": unique, "duration": duration, "mime_type": "audio/ogg",
                 "file_size": len(data) if file_size is None else file_size}
        return self.message_update(user_id, {"voice": voice}, **kw)

    def audio_update(self, user_id: int, data: bytes, file_name: str, mime_type: str, **kw: Any) -> dict:
        file_id, unique = self.add_file(data, "music", "." + file_name.rsplit(".", 1)[-1])
        audio = {"file_id": file_id, "file_unique_id": unique, "duration": 3, "file_name": file_name,
                 "mime_type": mime_type, "file_size": len(data)}
        return self.message_update(user_id, {"audio": audio}, **kw)

    def video_note_update(self, user_id: int, data: bytes, length: int = 240, **kw: Any) -> dict:
        file_id, unique = self.add_file(data, "video_notes", ".mp4")
        note = {"file_id": file_id, "file_unique_id": unique, "length": length, "duration": 3, "file_size": len(data)}
        return self.message_update(user_id, {"video_note": note}, **kw)

    def document_update(self, user_id: int, data: bytes, file_name: str, mime_type: str, caption: str = "", **kw: Any) -> dict:
        file_id, unique = self.add_file(data, "documents", "." + file_name.rsplit(".", 1)[-1])
        doc = {"file_id": file_id, "file_unique_id": unique, "file_name": file_name, "mime_type": mime_type,
               "file_size": len(data)}
        fields: dict[str, Any] = {"document": doc}
        if caption:
            fields["caption"] = caption
        return self.message_update(user_id, fields, **kw)

    def photo_update(self, user_id: int, data: bytes, width: int, height: int, caption: str = "", **kw: Any) -> dict:
        file_id, unique = self.add_file(data, "photos", ".jpg")
        # Telegram sends every size it made; the bot should take the largest
        thumb_id, thumb_unique = self.add_file(data[: len(data) // 4], "photos", ".jpg")
        sizes = [{"file_id": thumb_id, "file_unique_id": thumb_unique, "width": max(1, width // 4),
                  "height": max(1, height // 4), "file_size": len(data) // 4},
                 {"file_id": file_id, "file_unique_id": unique, "width": width, "height": height, "file_size": len(data)}]
        fields: dict[str, Any] = {"photo": sizes}
        if caption:
            fields["caption"] = caption
            if caption.startswith("/"):
                fields["caption_entities"] = [{"type": "bot_command", "offset": 0, "length": len(caption.split()[0])}]
        return self.message_update(user_id, fields, **kw)

    def video_update(self, user_id: int, data: bytes, caption: str = "", **kw: Any) -> dict:
        file_id, unique = self.add_file(data, "videos", ".mp4")
        video = {"file_id": file_id, "file_unique_id": unique, "width": 320, "height": 240, "duration": 2,
                 "mime_type": "video/mp4", "file_size": len(data)}
        fields: dict[str, Any] = {"video": video}
        if caption:
            fields["caption"] = caption
            if caption.startswith("/"):
                fields["caption_entities"] = [{"type": "bot_command", "offset": 0, "length": len(caption.split()[0])}]
        return self.message_update(user_id, fields, **kw)

    def message_update(self, user_id: int, fields: dict, *, chat_id: int | None = None, chat_type: str = "private",
                       reply_to: dict | None = None, first_name: str = "") -> dict:
        chat_id = user_id if chat_id is None else chat_id
        chat = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name or f"User{user_id}"
        else:
            chat["title"] = f"Group {chat_id}"
        message = {"message_id": next(self._message_ids), "date": int(time.time()), "chat": chat,
                   "from": {"id": user_id, "is_bot": False, "first_name": first_name or f"User{user_id}"}, **fields}
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        self.messages[(chat_id, message["message_id"])] = message
        update = {"update_id": next(self._update_ids), "message": message}
        self.updates.append(update)
        asyncio.get_running_loop().create_task(self._notify())
        return update

    def hold(self, method: str) -> "Gate":
        """Keep calls of `method` waiting, unanswered and unrecorded, until the gate opens."""
        self.held[method] = Gate()
        return self.held[method]

    def release(self, method: str, *, deliver: bool = True) -> None:
        """Open the gate: held calls go through (deliver) or fail as if they never arrived."""
        gate = self.held.pop(method, None)
        if gate is not None:
            gate.deliver = deliver
            gate.set()

    def fail(self, method: str, status: int, *, retry_after: int | None = None, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with an error, as Telegram does under flood control (429 with
        `parameters.retry_after`) or when it has trouble of its own (5xx); the call has no effect."""
        self.failures.setdefault(method, []).extend([(status, retry_after)] * times)

    def fail_every_send(self, method: str, failures: list[tuple[int, int | None]]) -> None:
        """Every call of `method` to a chat that follows a success there fails, with the next of `failures` in
        turn: each send succeeds only when retried. A status of DROP closes the connection without an answer."""
        self.flaky[method] = itertools.cycle(failures)

    def sent_to(self, chat_id: int, *methods: str) -> list[Sent]:
        return [s for s in self.sent if s.chat_id == chat_id and (not methods or s.method in methods)]

    def called(self, method: str) -> list[dict]:
        return [params for m, params in self.calls if m == method]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        async with self._changed:
            while True:
                result = predicate()
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"waited {timeout:.0f} s; the bot sent: {[(s.method, s.chat_id, s.text[:60]) for s in self.sent]}")
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except TimeoutError:
                    pass

    # ---- the HTTP side ----

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
        if self.webhook is not None and (self._webhook_task is None or self._webhook_task.done()):
            self._webhook_task = asyncio.get_running_loop().create_task(self._push_webhook())

    async def _method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        try:
            params, files = await _read_params(request)
        except ApiError as exc:
            return _error(exc.code, exc.description)
        self.calls.append((method, params))
        failure = None
        if self.failures.get(method):
            failure = self.failures[method].pop(0)
        elif method in self.flaky:
            key = (method, str(params.get("chat_id")))
            if key not in self._flaky_failed:
                failure = next(self.flaky[method])
                self.failed_sends += 1
                self._flaky_failed.add(key)
            else:
                self._flaky_failed.discard(key)
        if failure is not None:
            status, retry_after = failure
            if status == DROP:
                assert request.transport is not None
                request.transport.close()  # the connection drops before Telegram did anything
                return web.Response()
            if status == 429:
                return web.json_response({"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {retry_after}",
                                          "parameters": {"retry_after": retry_after}}, status=429)
            return _error(status, "Internal Server Error" if status == 500 else "Bad Gateway")
        gate = self.held.get(method)
        if gate is not None:
            await gate.wait()
            if not gate.deliver:
                # the test decided this call never reached Telegram (its sender was killed)
                return _error(502, "Bad Gateway")
        handler = getattr(self, "_m_" + method.lower(), None)
        if handler is None:
            return _error(404, "Not Found")
        try:
            result = await handler(params, files)
        except ApiError as exc:
            return _error(exc.code, exc.description)
        await self._notify()
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        path = request.match_info["path"]
        for file_path, data in self.files.values():
            if file_path == path:
                return web.Response(body=data, content_type="application/octet-stream")
        return _error(404, "Not Found")

    async def _push_webhook(self) -> None:
        """Deliver pending updates to the webhook, each until the bot answers 2xx, up to 40 at a time like Telegram."""
        async with aiohttp.ClientSession() as http:
            pending: dict[int, asyncio.Task] = {}
            while self.webhook is not None and (self.updates or pending):
                for update in list(self.updates):
                    if update["update_id"] not in pending and len(pending) < 40:
                        pending[update["update_id"]] = asyncio.create_task(self._post_update(http, update))
                done, _ = await asyncio.wait(pending.values(), return_when=asyncio.FIRST_COMPLETED)
                for uid in [u for u, t in pending.items() if t in done]:
                    del pending[uid]

    async def _post_update(self, http: aiohttp.ClientSession, update: dict) -> None:
        while self.webhook is not None:
            headers = {"X-Telegram-Bot-Api-Secret-Token": self.webhook["secret_token"]} if self.webhook.get("secret_token") else {}
            try:
                self.delivered.append(update["update_id"])
                async with http.post(self.webhook["url"], json=update, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=120)) as resp:
                    if 200 <= resp.status < 300:
                        self.updates = [u for u in self.updates if u["update_id"] != update["update_id"]]
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.3)

    # ---- methods ----

    async def _m_getme(self, p: dict, f: dict) -> dict:
        return self.bot_user

    async def _m_logout(self, p: dict, f: dict) -> bool:
        return True

    async def _m_close(self, p: dict, f: dict) -> bool:
        return True

    async def _m_getupdates(self, p: dict, f: dict) -> list[dict]:
        if self.webhook is not None:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first")
        offset = int(p.get("offset") or 0)
        limit = max(1, min(100, int(p.get("limit") or 100)))
        timeout = float(p.get("timeout") or 0)
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        elif offset < 0:
            self.updates = self.updates[offset:]
        deadline = time.monotonic() + timeout
        async with self._changed:
            while not self.updates and time.monotonic() < deadline:
                try:
                    await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())
                except TimeoutError:
                    break
        batch = self.updates[:limit]
        self.delivered.extend(u["update_id"] for u in batch)
        return batch

    async def _m_setwebhook(self, p: dict, f: dict) -> bool:
        url = str(p.get("url") or "")
        if not url:
            self.webhook = None
            return True
        if not url.startswith(("http://", "https://")):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        if p.get("drop_pending_updates") in (True, "true", "True"):
            self.updates.clear()
        self.webhook = {"url": url, "secret_token": p.get("secret_token") or ""}
        await self._notify()
        return True

    async def _m_setmycommands(self, p: dict, f: dict) -> bool:
        commands = p.get("commands")
        commands = json.loads(commands) if isinstance(commands, str) else commands
        scope = p.get("scope")
        scope = json.loads(scope) if isinstance(scope, str) else scope
        if not isinstance(commands, list) or not all(c.get("command") and c.get("description") for c in commands):
            raise ApiError(400, "Bad Request: can't parse commands")
        self.menus[json.dumps(scope or {"type": "default"}, sort_keys=True)] = [c["command"] for c in commands]
        return True

    async def _m_deletewebhook(self, p: dict, f: dict) -> bool:
        self.webhook = None
        if p.get("drop_pending_updates") in (True, "true", "True"):
            self.updates.clear()
        return True

    async def _m_getwebhookinfo(self, p: dict, f: dict) -> dict:
        return {"url": (self.webhook or {}).get("url", ""), "has_custom_certificate": False,
                "pending_update_count": len(self.updates)}

    async def _m_sendchataction(self, p: dict, f: dict) -> bool:
        self._chat(p)
        if p.get("action") not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        self.sent.append(Sent("sendChatAction", _chat_id(p), dict(p), {}))
        return True

    async def _m_sendmessage(self, p: dict, f: dict) -> dict:
        text = str(p.get("text") or "")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        _check_markup(text, p.get("parse_mode"))
        return self._record("sendMessage", p, {}, {"text": text})

    async def _m_editmessagetext(self, p: dict, f: dict) -> dict:
        key = (_chat_id(p), int(p.get("message_id") or 0))
        message = self.messages.get(key)
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        text = str(p.get("text") or "")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        _check_markup(text, p.get("parse_mode"))
        if message.get("text") == text:
            raise ApiError(400, "Bad Request: message is not modified: specified new message content and reply markup "
                                "are exactly the same as a current content and reply markup of the message")
        message["text"] = text
        message["edit_date"] = int(time.time())
        self.sent.append(Sent("editMessageText", key[0], dict(p), {}, key[1]))
        return message

    async def _m_sendvoice(self, p: dict, f: dict) -> dict:
        data = self._upload(p, f, "voice")
        fid, unique = self.add_file(data, "voice", ".oga")
        voice = {"file_id": fid, "file_unique_id": unique, "duration": int(p.get("duration") or 0),
                 "mime_type": "audio/ogg", "file_size": len(data)}
        return self._record("sendVoice", p, {"voice": data}, {"voice": voice, **_caption(p)})

    async def _m_sendvideonote(self, p: dict, f: dict) -> dict:
        data = self._upload(p, f, "video_note")
        length = int(p.get("length") or 0)
        if length > 639:
            raise ApiError(400, "Bad Request: wrong video note length")
        fid, unique = self.add_file(data, "video_notes", ".mp4")
        note = {"file_id": fid, "file_unique_id": unique, "length": length, "duration": int(p.get("duration") or 0),
                "file_size": len(data)}
        return self._record("sendVideoNote", p, {"video_note": data}, {"video_note": note})

    async def _m_sendvideo(self, p: dict, f: dict) -> dict:
        data = self._upload(p, f, "video")
        fid, unique = self.add_file(data, "videos", ".mp4")
        video = {"file_id": fid, "file_unique_id": unique, "width": int(p.get("width") or 0),
                 "height": int(p.get("height") or 0), "duration": int(p.get("duration") or 0), "mime_type": "video/mp4",
                 "file_size": len(data)}
        return self._record("sendVideo", p, {"video": data}, {"video": video, **_caption(p)})

    async def _m_senddocument(self, p: dict, f: dict) -> dict:
        data = self._upload(p, f, "document")
        fid, unique = self.add_file(data, "documents")
        name = self._upload_names.get("document", "document")
        doc = {"file_id": fid, "file_unique_id": unique, "file_name": name, "file_size": len(data)}
        return self._record("sendDocument", p, {"document": data}, {"document": doc, **_caption(p)})

    async def _m_getfile(self, p: dict, f: dict) -> dict:
        file_id = str(p.get("file_id") or "")
        if file_id not in self.files:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, data = self.files[file_id]
        if len(data) > 20 * 1024 * 1024:
            raise ApiError(400, "Bad Request: file is too big")
        return {"file_id": file_id, "file_unique_id": file_id[-10:], "file_size": len(data), "file_path": path}

    # ---- helpers ----

    def _chat(self, p: dict) -> int | str:
        chat_id = _chat_id(p)
        if chat_id is None:
            raise ApiError(400, "Bad Request: chat_id is empty")
        return chat_id

    def _upload(self, p: dict, files: dict[str, tuple[str, bytes]], name: str) -> bytes:
        self._chat(p)
        value = p.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            value = files.get(value[len("attach://"):])
        elif value is None:
            value = files.get(name)
        if isinstance(value, tuple):
            self._upload_names = {name: value[0]}
            if not value[1]:
                raise ApiError(400, "Bad Request: file must be non-empty")
            return value[1]
        if isinstance(value, str) and value in self.files:
            return self.files[value][1]
        raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    def _record(self, method: str, p: dict, files: dict[str, bytes], content: dict) -> dict:
        chat_id = self._chat(p)
        message_id = next(self._message_ids)
        chat = {"id": chat_id, "type": "private" if isinstance(chat_id, int) and chat_id > 0 else "group"}
        message = {"message_id": message_id, "date": int(time.time()), "chat": chat, "from": self.bot_user, **content}
        reply = p.get("reply_parameters")
        if isinstance(reply, dict) and (chat_id, reply.get("message_id")) in self.messages:
            message["reply_to_message"] = self.messages[(chat_id, reply["message_id"])]
        self.messages[(chat_id, message_id)] = message
        self.sent.append(Sent(method, chat_id, dict(p), files, message_id))
        return message


async def _read_params(request: web.Request) -> tuple[dict, dict[str, tuple[str, bytes]]]:
    params: dict[str, Any] = dict(request.query)
    files: dict[str, tuple[str, bytes]] = {}
    ctype = request.content_type
    if ctype == "application/json":
        try:
            params.update(await request.json())
        except json.JSONDecodeError:
            raise ApiError(400, "Bad Request: can't parse JSON body") from None
    elif ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                files[key] = (value.filename or key, value.file.read())
            else:
                params[key] = _decode_field(str(value))
    return params, files


def _decode_field(value: str) -> Any:
    # the Bot API reads nested objects (reply_parameters, reply_markup ...) as JSON-serialized strings
    if value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _chat_id(p: dict) -> int | str | None:
    value = p.get("chat_id")
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value)


def _caption(p: dict) -> dict:
    return {"caption": p["caption"]} if p.get("caption") else {}


def _check_markup(text: str, parse_mode: str | None) -> None:
    """Reject what the real server rejects: MarkdownV2 with an unescaped reserved character."""
    if parse_mode == "MarkdownV2":
        escaped = False
        for ch in text:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch in MARKDOWN_V2_RESERVED:
                raise ApiError(400, f"Bad Request: can't parse entities: Character '{ch}' is reserved and must be escaped "
                                    "with the preceding '\\'")


def _error(code: int, description: str) -> web.Response:
    return web.json_response({"ok": False, "error_code": code, "description": description}, status=code)
