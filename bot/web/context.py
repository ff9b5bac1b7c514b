"""What every web handler needs, built once at start-up and handed to the route groups."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from bot.common.dialogue import Dialogue
from bot.web.media import MediaStore
from bot.web.security import LoginThrottle, Network, csrf_token, is_admin
from bot.wiring import Services
from core.errors import DoppelError, UnknownVoice

HERE = Path(__file__).resolve().parent


@dataclass
class WebContext:
    services: Services
    dialogue: Dialogue
    media: MediaStore = field(default_factory=MediaStore)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    job_poll_seconds: float = 1.0
    proxies: tuple[Network, ...] = ()  # whose X-Forwarded-For and X-Forwarded-Proto are believed
    templates: Jinja2Templates = field(default_factory=lambda: Jinja2Templates(directory=str(HERE / "templates")))

    def render(self, request: Request, name: str, status_code: int = 200, **values: object) -> Response:
        # an upload's page loaded by its script only to follow the redirect: the browser opens it next, keep the notice
        peek = request.headers.get("x-doppel-upload") == "1"
        take = request.session.get if peek else request.session.pop
        values.setdefault("flash", take("flash", None))
        values.setdefault("flash_error", take("flash_error", False))
        values.update(csrf=csrf_token(request), admin=is_admin(request))
        return self.templates.TemplateResponse(request, name, values, status_code=status_code)


def web_message(exc: DoppelError) -> str:
    """The error's message in the page's words: the bots' ones name their commands, the page has menus."""
    if isinstance(exc, UnknownVoice):
        return f"There is no voice called '{exc.voice}'. Choose one of the voices under the message box."
    return exc.message


def sse(event: str, data: object) -> bytes:
    """One server-sent event; JSON on one line, so the data never needs splitting."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def section_of(path: str) -> str:
    """Where a form's result is shown: /admin/voices/clips/3 → /admin/voices; anything outside admin → the chat."""
    parts = [p for p in path.split("/") if p]
    return "/" + "/".join(parts[:2]) if len(parts) >= 2 and parts[0] == "admin" else "/"


def back_with_notice(request: Request, message: str, to: str | None = None, *, error: bool = False) -> Response:
    """After a form post: back to its page, with one line saying what happened (post/redirect/get); an error's
    line is shown as one."""
    request.session["flash"] = message
    request.session["flash_error"] = error
    return RedirectResponse(to or section_of(request.url.path), status_code=303)
