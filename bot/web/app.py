"""Building the web app from the shared services, turning domain errors into answers, and serving it."""
from __future__ import annotations

import logging
import secrets

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.common.dialogue import Dialogue
from bot.settings import Settings
from bot.web.admin import AdminPages
from bot.web.rvc_admin import RvcAdminPages
from bot.web.chat import ChatPages
from bot.web.context import HERE, WebContext, back_with_notice
from bot.web.security import CSRF_HEADER, AdminLogins, CsrfRejected
from bot.wiring import Services
from core.errors import DoppelError, FileTooLarge, NotAllowed, RateLimited

log = logging.getLogger(__name__)

_STATUS = {FileTooLarge: 413, NotAllowed: 403, CsrfRejected: 403, RateLimited: 429}

# plain JS from our own origin only; media may also come from blob: URLs the page makes
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", _CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


async def on_doppel_error(request: Request, exc: Exception) -> Response:
    """The one place a domain error becomes an answer: JSON for the page's fetch calls (they send the CSRF
    header), a notice on the form's page for a plain form post."""
    assert isinstance(exc, DoppelError)
    if exc.detail:
        log.info("%s %s: %s (%s)", request.method, request.url.path, exc.code, exc.detail)
    if request.method == "POST" and CSRF_HEADER not in request.headers:
        return back_with_notice(request, exc.message)
    status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 400)
    return JSONResponse({"code": exc.code, "message": exc.message}, status_code=status)


def create_app(services: Services, *, job_poll_seconds: float = 1.0) -> Starlette:
    settings = services.settings
    secret = settings.web_secret.get_secret_value()
    if not secret:
        log.warning("DOPPEL_WEB_SECRET is not set: sessions use a random key and end when the server restarts")
        secret = secrets.token_urlsafe(32)
    ctx = WebContext(services=services, dialogue=Dialogue(services), job_poll_seconds=job_poll_seconds)
    routes = [
        *ChatPages(ctx).routes(),
        *AdminPages(ctx).routes(),
        *RvcAdminPages(ctx).routes(),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=secret, session_cookie="doppel_session", same_site="lax",
                   https_only=False, max_age=14 * 24 * 3600),
    ]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={DoppelError: on_doppel_error})
    app.state.web = ctx
    app.state.admin_logins = AdminLogins()
    return app


async def serve(settings: Settings) -> None:
    """`doppel web`: load the engines once, then serve until Ctrl-C."""
    import uvicorn

    from bot.wiring import build_services

    services = await build_services(settings)
    try:
        app = create_app(services)
        config = uvicorn.Config(app, host=settings.web_host, port=settings.web_port, log_level="info",
                                # open event streams must not hold a restart hostage
                                timeout_graceful_shutdown=3)
        print(f"doppel web: http://{settings.web_host}:{settings.web_port}/  (admin: /admin)")
        await uvicorn.Server(config).serve()
    finally:
        await services.close()
