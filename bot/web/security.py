"""Per-browser identity, CSRF tokens, the admin login and its throttle.

Sessions live in a signed cookie, but an admin login is also held by the server (AdminLogins): the cookie only
names it, so logging out, a restart or the login's age ends it even for a copy of the cookie taken before.
"""
from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from functools import wraps
from typing import Awaitable, Callable

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from core.errors import DoppelError

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"


class CsrfRejected(DoppelError):
    code = "csrf"
    default_message = "This page has expired. Please reload it and try again."


class LoginThrottled(DoppelError):
    code = "login_throttled"
    default_message = "Too many wrong passwords. Please wait a few minutes."


def session_id(request: Request) -> str:
    """A random id per browser, kept in the signed session cookie; web users are "web:<id>"."""
    sid = request.session.get("sid")
    if not sid:
        sid = request.session["sid"] = secrets.token_urlsafe(12)
    return sid


def web_user(request: Request) -> str:
    return f"web:{session_id(request)}"


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return token


def check_csrf(request: Request, form: FormData | None = None) -> None:
    """Every state-changing request carries the session's token, in a header (fetch) or a form field."""
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER) or (form.get(CSRF_FIELD) if form is not None else None)
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        raise CsrfRejected()


class AdminLogins:
    """The admin logins alive in this server process, each for `hours` at most."""

    def __init__(self, hours: float = 12.0) -> None:
        self.seconds = hours * 3600
        self._expiry: dict[str, float] = {}

    def open(self) -> str:
        now = time.monotonic()
        # logins nobody came back to would otherwise stay in the table for good
        self._expiry = {k: t for k, t in self._expiry.items() if t > now}
        key = secrets.token_urlsafe(24)
        self._expiry[key] = now + self.seconds
        return key

    def alive(self, key: object) -> bool:
        if not isinstance(key, str) or key not in self._expiry:
            return False
        if time.monotonic() >= self._expiry[key]:
            del self._expiry[key]
            return False
        return True

    def close(self, key: object) -> None:
        if isinstance(key, str):
            self._expiry.pop(key, None)


def _logins(request: Request) -> AdminLogins:
    return request.app.state.admin_logins


def is_admin(request: Request) -> bool:
    return _logins(request).alive(request.session.get("admin"))


def admin_only(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    @wraps(handler)
    async def guarded(request: Request) -> Response:
        if not is_admin(request):
            return RedirectResponse(f"/admin/login?next={request.url.path}", status_code=303)
        return await handler(request)

    return guarded


def log_in(request: Request) -> None:
    request.session["admin"] = _logins(request).open()
    # a fresh token after login, so a token seen before it is worth nothing
    request.session["csrf"] = secrets.token_urlsafe(24)


def log_out(request: Request) -> None:
    _logins(request).close(request.session.pop("admin", None))
    request.session["csrf"] = secrets.token_urlsafe(24)


def password_matches(given: str, expected: str) -> bool:
    # no password configured means no admin at all, never "any password works"
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


class LoginThrottle:
    """At most `attempts` wrong passwords per client address in `window` seconds."""

    def __init__(self, attempts: int = 5, window: float = 300.0) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def check(self, client: str) -> None:
        now = time.monotonic()
        recent = self._failures.get(client)
        while recent and now - recent[0] > self.window:
            recent.popleft()
        if recent and len(recent) >= self.attempts:
            raise LoginThrottled()

    def failed(self, client: str) -> None:
        self._failures.setdefault(client, deque()).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
