"""The web admin's versions controls: a voice's state and versions on its card, and restore, rename, retry and
delete as form posts (with their CSRF token), against the app served by uvicorn."""
from __future__ import annotations

import html
import re

import aiohttp
import pytest

from adapters.settings import Settings
from bot.wiring import build_services
from core.types import JobStatus
from storage.avatars import AvatarRepository
from tests.lifecycle_fixtures import voice_with_versions
from tests.web_harness import live_server

PASSWORD = "correct horse battery"


@pytest.fixture
async def site(tmp_path, engines):
    settings = Settings(_env_file=None, data_dir=tmp_path / "var", web_admin_password=PASSWORD, web_secret="web-test-secret")
    services = await build_services(settings, engines=engines)
    try:
        async with live_server(services) as server:
            yield server
    finally:
        await services.close()


def _token(page: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


async def test_admin_restores_renames_retries_and_deletes_a_voice(site):
    services = site.services
    failed = await voice_with_versions(services, "anna")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        # not logged in: refused, nothing changes
        page = await (await http.get(site.url + "/admin/login")).text()
        r = await http.post(site.url + "/admin/voices/manage/anna/delete", data={"csrf": _token(page)}, allow_redirects=False)
        assert r.status == 303 and r.headers["location"].startswith("/admin/login")
        assert "anna" in await services.voices.names()

        r = await http.post(site.url + "/admin/login", data={"csrf": _token(page), "password": PASSWORD})
        page = html.unescape(await (await http.get(site.url + "/admin/voices")).text())
        assert "voice anna: ready v2 (kept v1, v2)" in page and "out of memory" in page
        assert 'action="/admin/voices/manage/anna/restore"' in page and f'action="/admin/jobs/{failed}/retry"' in page
        token = _token(page)

        async def post(path: str, **form) -> str:
            r = await http.post(site.url + path, data={"csrf": token, **form})
            assert r.status == 200
            return html.unescape(await r.text())

        assert "Voice 'anna' now uses v1." in await post("/admin/voices/manage/anna/restore", version="1")
        assert (await services.voices.get("anna")).params["version"] == 1
        assert "There is no version v5" in await post("/admin/voices/manage/anna/restore", version="5")
        assert "Voice 'anna' is now 'hanna'." in await post("/admin/voices/manage/anna/rename", new_name="hanna")
        assert "A voice name may use letters" in await post("/admin/voices/manage/hanna/rename", new_name="no way")
        page = await post(f"/admin/jobs/{failed}/retry")
        assert "Voice 'hanna': training queued again as job" in page and "ready v1" in page
        page = await post("/admin/voices/manage/hanna/delete")
        assert "Voice 'hanna' deleted, with its files." in page and "No voices yet." in page
        # an avatar's row carries the same controls
        avatars = AvatarRepository(services.sessions)
        await avatars.new_source("ava", "lite", "", {})
        for job in (3, 4):
            (services.settings.data_dir / f"ava-{job}").mkdir()
            await avatars.add_version("ava", str(services.settings.data_dir / f"ava-{job}"), {}, engine="lite")
        page = html.unescape(await (await http.get(site.url + "/admin/avatars")).text())
        assert "avatar ava: ready v2 (kept v1, v2)" in page and 'action="/admin/avatars/manage/ava/restore"' in page
        assert "Avatar 'ava' now uses v1." in await post("/admin/avatars/manage/ava/restore", version="1")
        assert (await avatars.get("ava")).artifact_path.endswith("ava-3")
    assert "hanna" not in await services.voices.names()
    assert not (services.settings.data_dir / "voices" / "hanna").exists()
    assert [j.status for j in await services.jobs.list()] == [JobStatus.CANCELLED, JobStatus.FAILED]
