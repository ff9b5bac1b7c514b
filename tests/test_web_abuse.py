"""The web server under a hostile or unlucky visitor: hours-long uploads, crowds, dropped connections, dropped
cookies and forged headers. Everything runs against the app under a real uvicorn on 127.0.0.1."""
from __future__ import annotations

import asyncio
import re
import time
import tracemalloc
from contextlib import asynccontextmanager
from dataclasses import replace

import aiohttp
import pytest

from adapters.engines import build_chat_model
from adapters.media import decode_audio
from adapters.settings import Settings
from bot.wiring import build_services
from core.errors import AudioTooLong
from core.types import ConversationKey
from tests.fakes.llm_servers import FakeLLMServer, Reply
from tests.long_audio import long_recording
from tests.web_harness import live_server

PASSWORD = "correct horse battery"
NOT_AUDIO = b"OggS but not really"


@pytest.fixture
def make_site(tmp_path, engines):
    """The site with the real engines, but answers written by a loopback OpenAI-compatible server (through the
    real SDK): quick, and scripted where a story needs the answer held back."""

    @asynccontextmanager
    async def site(replies: list[Reply] | None = None, **overrides):
        async with FakeLLMServer("openai", replies or [Reply(pieces=["Paris is", " the capital.", " Anything else?"])]) as llm:
            settings = Settings(_env_file=None, data_dir=tmp_path / "var", web_admin_password=PASSWORD,
                                web_secret="abuse-test-secret", llm_provider="openai", openai_base_url=llm.base_url,
                                openai_api_key="sk-loopback", **overrides)
            chat_model = build_chat_model(settings)
            services = await build_services(settings, engines=replace(engines, chat_model=chat_model))
            try:
                async with live_server(services) as server:
                    yield server
            finally:
                await services.close()
                await chat_model.aclose()

    return site


def visitor() -> aiohttp.ClientSession:
    # unsafe: the jar must keep cookies from a bare IP address like 127.0.0.1
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def csrf(http: aiohttp.ClientSession, url: str) -> str:
    page = await (await http.get(url)).text()
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def turn_form(*, text: str | None = None, audio: bytes | None = None, name: str = "q.ogg", turn: str | None = None) -> aiohttp.FormData:
    form = aiohttp.FormData()
    if audio is not None:
        form.add_field("audio", audio, filename=name, content_type="application/octet-stream")
    if text is not None:
        form.add_field("text", text)
    form.add_field("speak", "0")
    if turn is not None:
        form.add_field("turn", turn)
    return form


def events(body: str) -> list[tuple[str, str]]:
    out = []
    for chunk in body.split("\n\n"):
        found = re.search(r"^event: (\w+)\ndata: (.*)$", chunk, re.M)
        if found:
            out.append((found.group(1), found.group(2)))
    return out


def test_decoding_stops_at_the_limit_in_time_and_memory():
    """Memory is bounded by the limit, not by the file: twenty minutes decode no further than the limit."""
    for fmt, says in (("ogg", "is 1200 s long"), ("webm", "runs past the limit of 60 s")):
        data = long_recording(20, fmt)
        allowed = long_recording(55 / 60, fmt)
        tracemalloc.start()  # (it slows decoding: the yardstick is measured under it too)
        # nearly what the limit lets through, decoded whole: the yardstick, measured now on this machine as it is
        started = time.perf_counter()
        decode_audio(allowed, max_seconds=60)
        yardstick = time.perf_counter() - started
        tracemalloc.reset_peak()
        started = time.perf_counter()
        with pytest.raises(AudioTooLong) as refused:
            decode_audio(data, max_seconds=60)
        took = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert says in refused.value.message
        # the whole file would be 1200 s x 16 kHz x 4 bytes = 77 MB of samples, and 20 times the yardstick's decoding
        assert peak < 12e6, (fmt, peak)
        assert took < 4 * yardstick + 0.05, (fmt, took, yardstick)


@pytest.mark.slow
async def test_an_hour_long_upload_is_refused_while_static_files_stay_quick(make_site):
    """Before: the whole hour decoded on the event loop, freezing every request (even static files) for seconds."""
    hour = long_recording(60, "ogg")
    unstated = long_recording(30, "webm")
    async with make_site() as site, visitor() as http:
        token = await csrf(http, site.url + "/")
        latencies: list[float] = []
        stop = asyncio.Event()

        async def fetch_static() -> None:
            async with aiohttp.ClientSession() as other:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    async with other.get(site.url + "/static/style.css") as r:
                        assert r.status == 200
                        await r.read()
                    latencies.append(time.perf_counter() - t0)
                    await asyncio.sleep(0.02)

        async with aiohttp.ClientSession() as other:  # the first fetch sets up what the later ones reuse
            await (await other.get(site.url + "/static/style.css")).read()
        watcher = asyncio.create_task(fetch_static())
        await asyncio.sleep(0.2)
        quiet = sorted(latencies)  # the static file on this machine as busy as it is, before any upload
        answers = []
        for data, name in ((hour, "hour.ogg"), (unstated, "half-hour.webm")):
            t0 = time.perf_counter()
            r = await http.post(site.url + "/chat/turn", data=turn_form(audio=data, name=name),
                                headers={"X-CSRF-Token": token})
            answers.append((r.status, (await r.json())["code"], time.perf_counter() - t0))
        stop.set()
        await watcher
    assert [a[:2] for a in answers] == [(400, "audio_too_long"), (400, "audio_too_long")]
    assert all(took < 5 for *_, took in answers), answers
    # (bench/abuse.py measures the p99 against its 0.5 s goal; here the bound is wide, and wider on a machine whose
    # quiet fetches were slow already: an hour decoded on the event loop held every request for seconds)
    usual = quiet[len(quiet) // 2] if quiet else 0.0
    assert len(latencies) >= 5 and max(latencies) < max(1.0, 20 * usual), (max(latencies), usual)


async def test_past_the_reply_cap_a_visitor_is_told_their_place_then_answered(make_site):
    async with make_site(web_replies_at_once=1, web_max_in_line=1) as site:
        slots = site.app.state.chat.slots
        held = slots.join()  # someone else's answer takes the one slot
        async with visitor() as first, visitor() as second:
            token = await csrf(first, site.url + "/")
            response = await first.post(site.url + "/chat/turn", data=turn_form(text="Hello there!"),
                                        headers={"X-CSRF-Token": token})
            assert response.status == 200
            line = await response.content.readuntil(b"\n\n")
            assert line.startswith(b"event: queued") and b"you are 1st in line" in line
            # the line is full: the next visitor is told at once, not made to wait
            token2 = await csrf(second, site.url + "/")
            refused = await second.post(site.url + "/chat/turn", data=turn_form(text="Me too!"),
                                        headers={"X-CSRF-Token": token2})
            assert refused.status == 503 and (await refused.json())["code"] == "busy"
            held.leave()
            rest = (await response.content.read()).decode()
        assert [e for e, _ in events(rest)][-1] == "done"
        assert slots.running == 0 and slots.waiting == 0


async def test_a_dropped_connection_resumes_the_same_answer_never_a_second_one(make_site):
    release = asyncio.Event()
    held = Reply(pieces=["Paris is the capital.", " It is lovely", " in the spring."], hold_after=2, release=release)
    async with make_site([held]) as site, visitor() as http:
        token = await csrf(http, site.url + "/")
        headers = {"X-CSRF-Token": token}
        turn = "turn-0123456789"
        r = await http.post(site.url + "/chat/turn", data=turn_form(text="What is the capital of France?", turn=turn),
                            headers=headers)
        first = await r.content.readuntil(b"\n\n")
        r.close()  # the connection drops after the first sentence, while the model is still writing
        await asyncio.sleep(0.3)
        release.set()
        r = await http.get(f"{site.url}/chat/turn/{turn}?after=1")
        rest = events((await r.read()).decode())
        # posting the same turn again (a browser retry) joins it: the same events, made once
        r = await http.post(site.url + "/chat/turn", data=turn_form(text="What is the capital of France?", turn=turn),
                            headers=headers)
        again = events((await r.read()).decode())
        [user] = [u for u in await site.services.users.list() if u.id.startswith("web:")]
        stored = await site.services.history.count(ConversationKey(user.id, user.id))
        unknown = await http.get(f"{site.url}/chat/turn/not-a-turn-at-all")
    assert events(first.decode()) + rest == again
    assert [e for e, _ in again] == ["sentence", "sentence", "done"]
    assert stored == 2  # one question, one answer
    assert unknown.status == 404


async def test_identity_holds_without_cookies_and_forged_headers_change_nothing(make_site):
    async with make_site(web_rate_limit_per_address=4, rate_limit_per_minute=100) as site:
        statuses = []
        for i in range(6):
            # a fresh cookie every time, and a different forged X-Forwarded-For
            async with visitor() as http:
                token = await csrf(http, site.url + "/")
                r = await http.post(site.url + "/chat/turn", data=turn_form(audio=NOT_AUDIO),
                                    headers={"X-CSRF-Token": token, "X-Forwarded-For": f"203.0.113.{i}"})
                await r.read()
                statuses.append(r.status)
        users = [u for u in await site.services.users.list() if u.id.startswith("web:")]
        shown = users[0].display_name
    # 400: let in, and the (unreadable) recording refused; 429: refused before anything ran
    assert statuses == [400, 400, 400, 400, 429, 429]
    assert len(users) == 4
    assert shown == "web visitor from 127.0.0.1"


async def test_new_cookies_from_one_address_add_only_a_few_users(make_site):
    async with make_site(rate_limit_per_minute=100, web_new_visitors_per_address=5) as site:
        statuses = []
        for _ in range(8):
            async with visitor() as http:
                token = await csrf(http, site.url + "/")
                r = await http.post(site.url + "/chat/turn", data=turn_form(audio=NOT_AUDIO), headers={"X-CSRF-Token": token})
                await r.read()
                statuses.append(r.status)
        users = [u for u in await site.services.users.list() if u.id.startswith("web:")]
    assert statuses == [400] * 5 + [429] * 3
    assert len(users) == 5


async def test_an_office_behind_one_address_is_let_in_while_each_visitor_keeps_their_own_limit(make_site):
    async with make_site() as site:  # the default limits
        newcomers = []
        for _ in range(20):  # twenty colleagues, each a first message
            async with visitor() as http:
                token = await csrf(http, site.url + "/")
                r = await http.post(site.url + "/chat/turn", data=turn_form(audio=NOT_AUDIO), headers={"X-CSRF-Token": token})
                await r.read()
                newcomers.append(r.status)
        hasty = []
        async with visitor() as http:  # one of them sending as fast as they can
            token = await csrf(http, site.url + "/")
            for _ in range(site.services.settings.rate_limit_per_minute + 2):
                r = await http.post(site.url + "/chat/turn", data=turn_form(audio=NOT_AUDIO), headers={"X-CSRF-Token": token})
                hasty.append((r.status, await r.text()))
    # 400: let in, and the (unreadable) recording refused
    assert newcomers == [400] * 20
    assert [status for status, _ in hasty[-2:]] == [429, 429] and "too fast" in hasty[-1][1]


async def test_an_admins_deny_holds_for_the_address_and_behind_a_trusted_proxy(make_site):
    async with make_site(web_trusted_proxies=["127.0.0.1"], rate_limit_per_minute=100) as site:
        async def turn_from(address: str) -> int:
            async with visitor() as http:
                token = await csrf(http, site.url + "/")
                # the left address is the client's own say; the proxy appended what it saw
                r = await http.post(site.url + "/chat/turn", data=turn_form(text="Hello."),
                                    headers={"X-CSRF-Token": token, "X-Forwarded-For": f"198.51.100.99, {address}"})
                await r.read()
                return r.status

        status = await turn_from("192.0.2.7")
        [user] = [u for u in await site.services.users.list() if u.id.startswith("web:")]
        assert status == 200 and user.display_name == "web visitor from 192.0.2.7"
        async with visitor() as admin:
            token = await csrf(admin, site.url + "/admin/login")
            await admin.post(site.url + "/admin/login", data={"csrf": token, "password": PASSWORD})
            token = await csrf(admin, site.url + "/admin/users")
            r = await admin.post(site.url + "/admin/users/allowed", data={"csrf": token, "user": user.id, "allowed": "0"})
            assert "(and their address 192.0.2.7)" in await r.text()
        # a new cookie from that address is still refused; another address behind the same proxy is not
        assert await turn_from("192.0.2.7") == 403
        assert await turn_from("192.0.2.8") == 200


async def test_login_throttle_neither_locks_the_admin_out_nor_yields_to_a_forged_header(make_site):
    async with make_site() as site, visitor() as admin, visitor() as attacker:
        # the admin has logged in from this browser before
        token = await csrf(admin, site.url + "/admin/login")
        r = await admin.post(site.url + "/admin/login", data={"csrf": token, "password": PASSWORD}, allow_redirects=False)
        assert r.status == 303
        token = await csrf(admin, site.url + "/admin/voices")
        await admin.post(site.url + "/admin/logout", data={"csrf": token})

        token = await csrf(attacker, site.url + "/admin/login")
        tries = []
        for i in range(7):
            r = await attacker.post(site.url + "/admin/login", data={"csrf": token, "password": f"guess {i}"},
                                    headers={"X-Forwarded-For": f"203.0.113.{i}"})
            tries.append(r.status)
        # the right password from the attacker's address waits too
        r = await attacker.post(site.url + "/admin/login", data={"csrf": token, "password": PASSWORD})
        attacker_status = r.status
        # while the admin, from the same address, gets in
        token = await csrf(admin, site.url + "/admin/login")
        r = await admin.post(site.url + "/admin/login", data={"csrf": token, "password": PASSWORD}, allow_redirects=False)
    assert tries == [401] * 5 + [429] * 2
    assert attacker_status == 429
    assert r.status == 303 and r.headers["location"] == "/admin/voices"


async def test_the_session_cookie_is_secure_over_https_behind_a_trusted_proxy_only(make_site):
    async def cookie(url: str, headers: dict) -> str:
        async with aiohttp.ClientSession() as http:
            r = await http.get(url + "/", headers=headers)
            return r.headers["set-cookie"]

    async with make_site() as site:
        untrusted = await cookie(site.url, {"X-Forwarded-Proto": "https"})
    async with make_site(web_trusted_proxies=["127.0.0.0/8"]) as site:
        trusted = await cookie(site.url, {"X-Forwarded-Proto": "https"})
        plain = await cookie(site.url, {})
        async with aiohttp.ClientSession() as http:
            health = await http.get(site.url + "/healthz")
            ready = await health.json()
    assert "secure" not in untrusted.lower()
    assert "; Secure" in trusted and "httponly" in trusted.lower()
    assert "secure" not in plain.lower()
    assert health.status == 200 and ready["ready"] is True
