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
from bot.web.security import LoginThrottle, csrf_token, is_admin
from bot.wiring import Services

HERE = Path(__file__).resolve().parent


@dataclass
class WebContext:
    services: Services
    dialogue: Dialogue
    media: MediaStore = field(default_factory=MediaStore)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    job_poll_seconds: float = 1.0
    templates: Jinja2Templates = field(default_factory=lambda: Jinja2Templates(directory=str(HERE / "templates")))

    def render(self, request: Request, name: str, status_code: int = 200, **values: object) -> Response:
        values.setdefault("flash", request.session.pop("flash", None))
        values.update(csrf=csrf_token(request), admin=is_admin(request))
        return self.templates.TemplateResponse(request, name, values, status_code=status_code)


def sse(event: str, data: object) -> bytes:
    """One server-sent event; JSON on one line, so the data never needs splitting."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def section_of(path: str) -> str:
    """Where a form's result is shown: /admin/voices/clips/3 → /admin/voices; anything outside admin → the chat."""
    parts = [p for p in path.split("/") if p]
    return "/" + "/".join(parts[:2]) if len(parts) >= 2 and parts[0] == "admin" else "/"


def back_with_notice(request: Request, message: str, to: str | None = None) -> Response:
    """After a form post: back to its page, with one line saying what happened (post/redirect/get)."""
    request.session["flash"] = message
    return RedirectResponse(to or section_of(request.url.path), status_code=303)
