"""The admin's RVC upload: a model (.pth), an optional index and the voice's settings, checked in full
(bot/common/rvc_voices.py) before the voice is stored, ready at once."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.common.rvc_voices import add_rvc_voice
from bot.web.context import WebContext, back_with_notice
from bot.web.security import admin_only
from bot.web.uploads import Accepts, read_form, take_file

MODEL = Accepts("an RVC model (.pth)", frozenset({".pth"}), ())
INDEX = Accepts("an RVC index (.index, or its features as .npy)", frozenset({".index", ".npy"}), ())
SETTINGS = ("pitch_shift", "f0_method", "index_rate", "protect", "rms_mix_rate", "speaker_id")


class RvcAdminPages:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[Route]:
        return [Route("/admin/voices/rvc", admin_only(self.add_rvc), methods=["POST"])]

    async def add_rvc(self, request: Request) -> Response:
        limit = self.ctx.services.settings.web_max_model_bytes
        form = await read_form(request, limit, files=2)
        model = await take_file(form, "model", MODEL, limit)
        assert model is not None  # a required file, or take_file refused the form
        index = await take_file(form, "index", INDEX, limit, required=False)
        settings = {k: str(form.get(k)).strip() for k in SETTINGS if str(form.get(k) or "").strip()}
        added = await add_rvc_voice(self.ctx.services, str(form.get("name") or "").strip(), model, index, settings)
        return back_with_notice(request, f"Voice '{added.voice.name}' is ready: RVC {added.version}, {added.sample_rate} Hz.",
                                f"/admin/voices#voice-{added.voice.name}")
