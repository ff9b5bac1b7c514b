"""Per-browser identity, CSRF tokens, the admin login and its throttle.

Sessions live in a signed cookie, but an admin login is also held by the server (AdminLogins): the cookie only
names it, so logging out, a restart or the login's age ends it even for a copy of the cookie taken before.

A cookie is the client's to drop, so limits and an admin's deny also hold per client address: the peer's,
or, only when the peer is one of the configured trusted proxies, the one it reports in X-Forwarded-For.
"""
from __future__ import annotations

import hmac
import ipaddress
import secrets
import time
from collections import deque
from functools import wraps
from typing import Awaitable, Callable, Iterable, Mapping, Sequence

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


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """"10.0.0.1, 192.168.0.0/16, ::1" → networks; a bad entry is a configuration error named as such."""
    nets = []
    for entry in entries:
        try:
            nets.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"DOPPEL_WEB_TRUSTED_PROXIES: '{entry}' is not an address or network") from None
    return tuple(nets)


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def peer_address(client: tuple[str, int] | None, headers: Mapping[str, str], proxies: Sequence[Network]) -> str:
    """The address a request came from. X-Forwarded-For is read only from a trusted proxy, right to left:
    the first address that is not one of our proxies is the one the outermost trusted hop saw; anything left
    of it is the client's own say and is ignored."""
    peer = client[0] if client else "unknown"
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


def over_https(scheme: str, client: tuple[str, int] | None, headers: Mapping[str, str], proxies: Sequence[Network]) -> bool:
    if scheme in ("https", "wss"):
        return True
    peer = client[0] if client else ""
    if not proxies or not _trusted(peer, proxies):
        return False
    forwarded = headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
    return forwarded == "https"


def client_address(request: Request) -> str:
    return peer_address(request.client, request.headers, request.app.state.web.proxies)


def address_key(address: str) -> str:
    """The stored user that stands for a client address: an admin's Deny of a web visitor is also kept here."""
    return f"web-ip:{address}"


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
    request.session["admin_before"] = True
    # a fresh token after login, so a token seen before it is worth nothing
    request.session["csrf"] = secrets.token_urlsafe(24)


def log_out(request: Request) -> None:
    _logins(request).close(request.session.pop("admin", None))
    request.session["csrf"] = secrets.token_urlsafe(24)


def password_matches(given: str, expected: str) -> bool:
    # no password configured means no admin at all, never "any password works"
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def login_throttle_key(request: Request) -> str:
    """Whose wrong passwords a login attempt counts against. A browser that has logged in before (a mark in its
    signed cookie, which nobody can forge) has its own count, so wrong passwords from elsewhere, even from the
    same address, never lock the admin out; any other browser counts against its client address, which a
    forged header cannot change."""
    if request.session.get("admin_before"):
        return f"browser:{session_id(request)}"
    return f"address:{client_address(request)}"


class LoginThrottle:
    """At most `attempts` wrong passwords per key (see login_throttle_key) in `window` seconds."""

    def __init__(self, attempts: int = 5, window: float = 300.0, max_keys: int = 10_000) -> None:
        self.attempts = attempts
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def check(self, client: str) -> None:
        now = time.monotonic()
        recent = self._failures.get(client)
        while recent and now - recent[0] > self.window:
            recent.popleft()
        if recent and len(recent) >= self.attempts:
            raise LoginThrottled()

    def failed(self, client: str) -> None:
        if len(self._failures) >= self.max_keys:
            # many addresses guessing at once: forget the counts that have run out, then the oldest
            now = time.monotonic()
            self._failures = {k: q for k, q in self._failures.items() if q and now - q[-1] <= self.window}
            while len(self._failures) >= self.max_keys:
                self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(client, deque()).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
