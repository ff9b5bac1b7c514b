"""Building the web app from the shared services, turning domain errors into answers, and serving it."""
from __future__ import annotations

import logging
import secrets
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.settings import Settings
from bot.common.dialogue import Dialogue
from bot.web.admin import AdminPages
from bot.web.rvc_admin import RvcAdminPages
from bot.web.chat import ChatPages
from bot.web.context import HERE, WebContext, back_with_notice, web_message
from bot.web.live import LiveFull, LivePages
from bot.web.security import CSRF_HEADER, AdminLogins, CsrfRejected, Network, over_https, trusted_networks
from bot.wiring import Services
from bot.common.slots import Busy
from core.errors import DoppelError, FileTooLarge, NotAllowed, RateLimited

log = logging.getLogger(__name__)

_STATUS = {FileTooLarge: 413, NotAllowed: 403, CsrfRejected: 403, RateLimited: 429, Busy: 503, LiveFull: 503}

# plain JS from our own origin only; media may also come from blob: URLs the page makes
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'")


class SecurityHeaders:
    """Headers every answer carries; over https (directly, or as a trusted proxy reports it) cookies are Secure."""

    def __init__(self, app: ASGIApp, proxies: tuple[Network, ...] = (), secure_cookies: bool = False) -> None:
        self.app = app
        self.proxies = proxies
        self.secure_cookies = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        secure = self.secure_cookies or over_https(scope.get("scheme", "http"), scope.get("client"), request_headers,
                                                   self.proxies)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, _secure_cookie(v) if secure and k.lower() == b"set-cookie" else v)
                           for k, v in message.get("headers", [])]
                headers += [(b"content-security-policy", _CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _secure_cookie(value: bytes) -> bytes:
    return value if b"; secure" in value.lower() else value + b"; Secure"


async def healthz(request: Request) -> Response:
    """Answers once the server takes traffic, which `doppel web` starts only after warming every engine."""
    chat = request.app.state.chat
    return JSONResponse({"ready": True, "replies_running": chat.slots.running, "replies_waiting": chat.slots.waiting,
                         "live_sessions": request.app.state.live.sessions.count})


async def on_doppel_error(request: Request, exc: Exception) -> Response:
    """The one place a domain error becomes an answer: JSON for the page's fetch calls (they send the CSRF
    header), a notice on the form's page for a plain form post."""
    assert isinstance(exc, DoppelError)
    if exc.detail:
        log.info("%s %s: %s (%s)", request.method, request.url.path, exc.code, exc.detail)
    if request.method == "POST" and CSRF_HEADER not in request.headers:
        return back_with_notice(request, web_message(exc), error=True)
    status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 400)
    return JSONResponse({"code": exc.code, "message": web_message(exc)}, status_code=status)


def create_app(services: Services, *, job_poll_seconds: float = 1.0) -> Starlette:
    settings = services.settings
    secret = settings.web_secret.get_secret_value()
    if not secret:
        log.warning("DOPPEL_WEB_SECRET is not set: sessions use a random key and end when the server restarts")
        secret = secrets.token_urlsafe(32)
    proxies = trusted_networks(settings.web_trusted_proxies)
    ctx = WebContext(services=services, dialogue=Dialogue(services), job_poll_seconds=job_poll_seconds, proxies=proxies)
    chat = ChatPages(ctx)
    live = LivePages(ctx, chat)
    routes = [
        Route("/healthz", healthz),
        *chat.routes(),
        *live.routes(),
        *AdminPages(ctx).routes(),
        *RvcAdminPages(ctx).routes(),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders, proxies=proxies, secure_cookies=settings.web_secure_cookie),
        Middleware(SessionMiddleware, secret_key=secret, session_cookie="doppel_session", same_site="lax",
                   https_only=False, max_age=14 * 24 * 3600),
    ]
    @asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        await live.close_all()  # peer connections and their answers end with the server

    app = Starlette(routes=routes, middleware=middleware, exception_handlers={DoppelError: on_doppel_error},
                    lifespan=lifespan)
    app.state.web = ctx
    app.state.chat = chat
    app.state.live = live
    app.state.admin_logins = AdminLogins()
    return app


async def serve(settings: Settings) -> None:
    """`doppel web`: load and warm the engines, then serve until Ctrl-C."""
    import uvicorn

    from bot.common.warmup import ready
    from bot.wiring import build_services

    services = await build_services(settings)
    try:
        app = create_app(services)
        await ready(services, "web")
        config = uvicorn.Config(app, host=settings.web_host, port=settings.web_port, log_level="info",
                                # open event streams must not hold a restart hostage
                                timeout_graceful_shutdown=3,
                                # X-Forwarded-For is ours to judge, and only from DOPPEL_WEB_TRUSTED_PROXIES
                                proxy_headers=False)
        print(f"doppel web: http://{settings.web_host}:{settings.web_port}/  (admin: /admin)")
        await uvicorn.Server(config).serve()
    finally:
        await services.close()
