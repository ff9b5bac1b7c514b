"""The admin dashboard: voices and their transcripts, avatar training, jobs with live progress, personas, users."""
from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from bot.common.avatars import ENGINES as AVATAR_ENGINES
from bot.common.avatars import add_photo_avatar, list_avatars, submit_avatar_training
from bot.common import lifecycle
from bot.common.voices import add_voice, edit_transcript, quality_summary
from bot.web.context import SSE_HEADERS, WebContext, back_with_notice, sse
from bot.web.security import (CsrfRejected, address_key, LoginThrottled, admin_only, check_csrf, log_in, log_out, login_throttle_key,
                               password_matches)
from bot.web.uploads import AUDIO, PHOTO, VIDEO, read_form, save_files, take_file, upload_folder
from core.errors import BadInput, UnknownVoice
from core.types import Job, VoiceEngine

_MAX_VOICE_CLIPS = 20
_MAX_PHOTO_BYTES = 20 * 1024 * 1024


def job_view(job: Job) -> dict:
    view = asdict(job)
    view["status"] = job.status.value
    view["finished"] = job.status.finished
    view["percent"] = round(job.progress * 100)
    return view


class AdminPages:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        ctx.templates.env.globals["describe"] = lifecycle.describe

    def routes(self) -> list[Route]:
        return [
            Route("/admin", admin_only(self.home)),
            Route("/admin/login", self.login_page),
            Route("/admin/login", self.login, methods=["POST"]),
            Route("/admin/logout", self.logout, methods=["POST"]),
            Route("/admin/voices", admin_only(self.voices)),
            Route("/admin/voices", admin_only(self.add_voice), methods=["POST"]),
            Route("/admin/voices/clips/{clip_id:int}", admin_only(self.edit_transcript), methods=["POST"]),
            Route("/admin/voices/{name}/clips/{clip_id:int}/audio", admin_only(self.clip_audio)),
            Route("/admin/avatars", admin_only(self.avatars)),
            Route("/admin/avatars", admin_only(self.add_avatar), methods=["POST"]),
            Route("/admin/avatars/photo", admin_only(self.add_photo), methods=["POST"]),
            Route("/admin/jobs", admin_only(self.jobs)),
            Route("/admin/jobs/events", admin_only(self.job_events)),
            Route("/admin/jobs/{job_id:int}/cancel", admin_only(self.cancel_job), methods=["POST"]),
            Route("/admin/jobs/{job_id:int}/retry", admin_only(self.retry_job), methods=["POST"]),
            Route("/admin/voices/manage/{name}/{action}", admin_only(self.manage), methods=["POST"]),
            Route("/admin/avatars/manage/{name}/{action}", admin_only(self.manage), methods=["POST"]),
            Route("/admin/personas", admin_only(self.personas)),
            Route("/admin/users", admin_only(self.users)),
            Route("/admin/users/allowed", admin_only(self.set_allowed), methods=["POST"]),
        ]

    @property
    def services(self):
        return self.ctx.services

    # ---- login ----

    async def login_page(self, request: Request) -> Response:
        return self.ctx.render(request, "login.html", next=_safe_next(request.query_params.get("next")))

    async def login(self, request: Request) -> Response:
        form = await request.form(max_files=0)
        client = login_throttle_key(request)
        try:
            check_csrf(request, form)
            self.ctx.throttle.check(client)
        except (CsrfRejected, LoginThrottled) as exc:
            status = 429 if isinstance(exc, LoginThrottled) else 403
            return self.ctx.render(request, "login.html", status_code=status, error=exc.message,
                                   next=_safe_next(str(form.get("next") or "")))
        expected = self.services.settings.web_admin_password.get_secret_value()
        if not password_matches(str(form.get("password") or ""), expected):
            self.ctx.throttle.failed(client)
            error = ("The admin page is off: set DOPPEL_WEB_ADMIN_PASSWORD to use it." if not expected
                     else "Wrong password.")
            return self.ctx.render(request, "login.html", status_code=401, error=error,
                                   next=_safe_next(str(form.get("next") or "")))
        self.ctx.throttle.succeeded(client)
        log_in(request)
        return RedirectResponse(_safe_next(str(form.get("next") or "")), status_code=303)

    async def logout(self, request: Request) -> Response:
        # no token asked: a page open since before the login (or a restart) holds an old one, and refusing it
        # left the admin logged in on a bare 405. Logging out is all a forged post could do, and the session
        # cookie (SameSite=lax) is not even sent with another site's post.
        await request.form(max_files=0)
        log_out(request)
        return RedirectResponse("/admin/login", status_code=303)

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/admin/voices", status_code=303)

    # ---- voices ----

    async def voices(self, request: Request) -> Response:
        voices = await self.services.voices.list()
        clips = {v.name: await self.services.voices.clips(v.name) for v in voices}
        life = {e.name: e for e in await lifecycle.entries(self.services, "voice")}
        return self.ctx.render(request, "admin_voices.html", section="voices", voices=voices, clips=clips, life=life,
                               quality={v.name: quality_summary(v) for v in voices},
                               engines=[e.value for e in VoiceEngine],
                               max_mb=self.services.settings.web_max_audio_bytes // (1024 * 1024),
                               model_mb=self.services.settings.web_max_model_bytes // (1024 * 1024))

    async def add_voice(self, request: Request) -> Response:
        limit = self.services.settings.web_max_audio_bytes
        form = await read_form(request, limit, files=_MAX_VOICE_CLIPS)
        try:
            engine = VoiceEngine(str(form.get("engine") or "lite"))
        except ValueError:
            raise BadInput("Choose one of the listed voice engines.") from None
        given = str(form.get("transcript") or "").strip()
        async with upload_folder(self.services.settings.data_dir) as folder:
            files = await save_files(form, "clips", AUDIO, limit, folder)
            added = await add_voice(self.services, str(form.get("name") or "").strip(), files,
                                    [given] * len(files) if given else None, engine=engine)
        job = f"; training job {added.job.id} queued" if added.job else ""
        return back_with_notice(request, f"Voice '{added.name}': {len(added.clips)} clip(s), {added.seconds:.1f} s{job}.",
                     f"/admin/voices#voice-{added.name}")

    async def edit_transcript(self, request: Request) -> Response:
        form = await request.form(max_files=0)
        check_csrf(request, form)
        await edit_transcript(self.services, request.path_params["clip_id"], str(form.get("transcript") or ""))
        return back_with_notice(request, "Transcript saved.")

    async def clip_audio(self, request: Request) -> Response:
        name, clip_id = request.path_params["name"], request.path_params["clip_id"]
        for clip in await self.services.voices.clips(name):
            if clip.id == clip_id and Path(clip.path).is_file():
                return FileResponse(clip.path, media_type="audio/wav")
        raise UnknownVoice(name)

    # ---- avatars and jobs ----

    async def avatars(self, request: Request) -> Response:
        jobs = [job_view(j) for j in await self.services.jobs.list() if j.kind == "avatar"]
        life = {e.name: e for e in await lifecycle.entries(self.services, "avatar")}
        return self.ctx.render(request, "admin_avatars.html", section="avatars", jobs=jobs, engines=AVATAR_ENGINES, life=life,
                               avatars=await list_avatars(self.services), photo_mb=_MAX_PHOTO_BYTES // (1024 * 1024),
                               max_mb=self.services.settings.web_max_video_bytes // (1024 * 1024))

    async def add_avatar(self, request: Request) -> Response:
        limit = self.services.settings.web_max_video_bytes
        form = await read_form(request, limit)
        async with upload_folder(self.services.settings.data_dir) as folder:
            [(filename, video)] = await save_files(form, "video", VIDEO, limit, folder)
            job = await submit_avatar_training(self.services, str(form.get("name") or "").strip(), video, filename,
                                               engine=str(form.get("engine") or "lite"))
        return back_with_notice(request, f"Avatar '{job.target}': training job {job.id} queued.", "/admin/avatars")

    async def add_photo(self, request: Request) -> Response:
        form = await read_form(request, _MAX_PHOTO_BYTES)
        _, photo = await take_file(form, "photo", PHOTO, _MAX_PHOTO_BYTES)  # type: ignore[misc]  # a required file: take_file returns one or refuses the form
        avatar = await add_photo_avatar(self.services, str(form.get("name") or "").strip(), photo)
        return back_with_notice(request, f"Avatar '{avatar.name}' is ready: it talks from this photo.", "/admin/avatars")

    async def jobs(self, request: Request) -> Response:
        jobs = [job_view(j) for j in await self.services.jobs.list()]
        return self.ctx.render(request, "admin_jobs.html", section="jobs", jobs=jobs)

    async def job_events(self, request: Request) -> Response:
        return StreamingResponse(self._job_stream(), media_type="text/event-stream", headers=SSE_HEADERS)

    async def _job_stream(self) -> AsyncIterator[bytes]:
        last: list[dict] | None = None
        idle = 0.0
        while True:
            jobs = [job_view(j) for j in await self.services.jobs.list()]
            if jobs != last:
                yield sse("jobs", jobs)
                last, idle = jobs, 0.0
            elif idle >= 15:
                yield b": still here\n\n"  # lets a dead connection be noticed
                idle = 0.0
            await asyncio.sleep(self.ctx.job_poll_seconds)
            idle += self.ctx.job_poll_seconds

    async def cancel_job(self, request: Request) -> Response:
        check_csrf(request, await request.form(max_files=0))
        job = await self.services.jobs.cancel(request.path_params["job_id"])
        note = "cancelled" if job.status.finished else "asked to stop; it stops within a few seconds"
        return back_with_notice(request, f"Job {job.id} ({job.kind} '{job.target}'): {note}.", _safe_next(request.headers.get("referer")))

    async def retry_job(self, request: Request) -> Response:
        check_csrf(request, await request.form(max_files=0))
        job = await lifecycle.retry(self.services, request.path_params["job_id"])
        return back_with_notice(request, f"{job.kind.capitalize()} '{job.target}': training queued again as job {job.id}.",
                                _safe_next(request.headers.get("referer")))

    async def manage(self, request: Request) -> Response:
        """Delete, restore or rename a voice or an avatar (its kind, name and the action are in the path)."""
        form = await request.form(max_files=0)
        check_csrf(request, form)
        name, action = request.path_params["name"], request.path_params["action"]
        kind = "voice" if request.url.path.startswith("/admin/voices/") else "avatar"
        page = f"/admin/{kind}s"
        if action == "delete":
            note = await lifecycle.delete(self.services, kind, name)
        elif action == "restore":
            text = str(form.get("version") or "").lower().removeprefix("v")
            if not text.isdigit():
                raise BadInput("Choose a version to restore.")
            note = await lifecycle.restore(self.services, kind, name, int(text))
        elif action == "rename":
            note = await lifecycle.rename(self.services, kind, name, str(form.get("new_name") or "").strip())
        else:
            raise BadInput(f"Unknown action '{action}'.")
        return back_with_notice(request, note[0].upper() + note[1:] + ".", page)

    # ---- personas and users ----

    async def personas(self, request: Request) -> Response:
        book = self.services.personas
        return self.ctx.render(request, "admin_personas.html", section="personas",
                               personas=[book.get(n) for n in book.names()], default=self.services.settings.persona)

    async def users(self, request: Request) -> Response:
        return self.ctx.render(request, "admin_users.html", section="users", users=await self.services.users.list())

    async def set_allowed(self, request: Request) -> Response:
        form = await request.form(max_files=0)
        check_csrf(request, form)
        user_id = str(form.get("user") or "")
        if not user_id or await self.services.users.get(user_id) is None:
            raise BadInput("There is no such user.")
        allowed = form.get("allowed") == "1"
        await self.services.users.set_allowed(user_id, allowed)
        also = ""
        if user_id.startswith("web:"):
            # a web visitor can drop their cookie: the decision holds for the address they came from too
            address = (await self.services.chats.get(user_id)).settings.get("address")
            if address and (not allowed or await self.services.users.get(address_key(address)) is not None):
                await self.services.users.set_allowed(address_key(address), allowed)
                also = f" (and their address {address})"
        return back_with_notice(request, f"{user_id} is now {'allowed' if allowed else 'denied'}{also}.")


def _safe_next(target: str | None) -> str:
    """Only a path on this site: a login must never bounce a browser to another host."""
    if not target:
        return "/admin/voices"
    parts = urlsplit(target)
    path = parts.path or "/admin/voices"
    if not path.startswith("/admin") or path.startswith("//"):
        return "/admin/voices"
    return path
