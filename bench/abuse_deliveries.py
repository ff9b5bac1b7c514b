"""Section 3 of bench/abuse.py: no answer delivered twice, and none made twice, while every send fails first.

The real bots run against the loopback fakes of the tests: Telegram (aiogram) against tests/fakes/telegram_api.py,
Discord (discord.py) against tests/fakes/discord_api.py, each with every send method failing before it succeeds
(a 429 with retry_after, a 500 or 502, a dropped connection, in turn). Answers come from a loopback
OpenAI-compatible server, so each question's model requests are counted. The web chat's clients drop their
event stream after the first event and resume it by the turn's id, and post the same turn again as a browser
retry does. Goal: exactly one answer delivered and one model request per message.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import aiohttp

ANSWER = ["The sea is wide.", " It is also", " very deep."]
ANSWER_TEXT = "".join(ANSWER)
QUIET = 2.0  # seconds with nothing new sent before a channel's run counts as over
TELEGRAM_SENDS = ("sendMessage", "editMessageText", "sendVoice", "sendAudio", "sendVideoNote", "sendDocument")


def _question(user: int, n: int) -> str:
    return f"Question {n} from user {user}: tell me about the sea."


def _asked(llm) -> Counter:
    """How many model requests each question caused (the last user message of each request)."""
    counts: Counter = Counter()
    for request in llm.requests:
        said = [m for m in request.body.get("messages", []) if m.get("role") == "user"]
        if said:
            content = said[-1]["content"]
            counts[content if isinstance(content, str) else str(content)] += 1
    return counts


async def _until_quiet(count, done, timeout: float) -> float:
    """Waits until `done()` holds and `count()` stayed the same for QUIET seconds; the seconds it took."""
    t0 = time.perf_counter()
    last, since = count(), time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        await asyncio.sleep(0.2)
        now = count()
        if now != last:
            last, since = now, time.perf_counter()
        elif done() and time.perf_counter() - since >= QUIET:
            break
    return time.perf_counter() - t0 - QUIET


def _chat_model(base_url: str, data_dir: Path):
    from adapters.engines import build_chat_model
    from adapters.settings import Settings

    return build_chat_model(Settings(_env_file=None, data_dir=data_dir, llm_provider="openai", llm_model="gpt-test-mini",
                                     openai_base_url=base_url, openai_api_key="sk-loopback", llm_retries=0))


async def telegram(engines, tmp: Path, users: int, per_user: int) -> dict:
    from tests.fakes.llm_servers import FakeLLMServer, Reply
    from tests.fakes.telegram_api import DROP, FakeTelegram
    from tests.telegram_support import bot_settings, running_bot

    fake = FakeTelegram()
    await fake.start()
    for method in TELEGRAM_SENDS:
        fake.fail_every_send(method, [(429, 1), (500, None), (DROP, None), (502, None)])
    ids = [5000 + u for u in range(users)]
    try:
        async with FakeLLMServer("openai", [Reply(pieces=ANSWER)]) as llm:
            chat_model = _chat_model(llm.base_url, tmp / "llm")
            try:
                async with running_bot(bot_settings(tmp, fake, persona="default", reply_voice_to_text=True), replace(engines, chat_model=chat_model)):
                    for n in range(per_user):
                        for user in ids:
                            fake.text_update(user, _question(user, n))
                    took = await _until_quiet(lambda: len(fake.sent) + fake.failed_sends,
                                              lambda: all(len(fake.sent_to(u, "sendVoice")) >= per_user for u in ids),
                                              60 + 20 * users * per_user)
            finally:
                await chat_model.aclose()
    finally:
        await fake.stop()
    answers = [len(fake.sent_to(u, "sendMessage")) for u in ids]
    voices = [len(fake.sent_to(u, "sendVoice")) for u in ids]
    finals = [s.text for u in ids for s in fake.sent_to(u, "sendMessage", "editMessageText")]
    failed = fake.failed_sends
    return {"messages": users * per_user, "answers": answers, "voices": voices, "asked": _asked(llm),
            "questions": [_question(u, n) for u in ids for n in range(per_user)], "failed_sends": failed,
            "whole": sum(1 for t in finals if t == ANSWER_TEXT), "took": took}


async def discord(engines, tmp: Path, users: int, per_user: int) -> dict:
    from tests.fakes.discord_api import DROP, DROP_AFTER
    from tests.fakes.discord_bot import discord_world
    from tests.fakes.llm_servers import FakeLLMServer, Reply

    async with FakeLLMServer("openai", [Reply(pieces=ANSWER)]) as llm:
        chat_model = _chat_model(llm.base_url, tmp / "llm")
        try:
            async with discord_world(tmp, replace(engines, chat_model=chat_model), persona="default",
                                     rate_limit_per_minute=0, reply_voice_to_text=True) as world:
                fake = world.fake
                people = []
                for u in range(users):
                    user = fake.add_user(f"user{u}")
                    fake.join(world.guild, user)
                    people.append((user, fake.dm_channel(user)))
                for method in ("POST", "PATCH"):
                    fake.fail_every_send(method, [(429, 0.5), (500, None), (DROP, None), (502, None), (DROP_AFTER, None)])
                for n in range(per_user):
                    for user, dm in people:
                        await fake.send_message(dm, user, _question(int(user["id"]), n))

                def texts(dm: int) -> list[str]:
                    return [m.content for m in fake.bot_messages(dm) if m.content]

                def voices(dm: int) -> int:
                    return sum(1 for m in fake.bot_messages(dm) if m.files)

                took = await _until_quiet(lambda: len(fake.messages) + fake.failed_sends,
                                          lambda: all(voices(dm) >= per_user for _, dm in people),
                                          60 + 20 * users * per_user)
                fake.flaky.clear()
                answers = [len(texts(dm)) for _, dm in people]
                whole = sum(1 for _, dm in people for t in texts(dm) if t == ANSWER_TEXT)
                voiced = [voices(dm) for _, dm in people]
                failed = fake.failed_sends
                questions = [_question(int(user["id"]), n) for user, _ in people for n in range(per_user)]
                errors = len(fake.errors)
        finally:
            await chat_model.aclose()
    return {"messages": users * per_user, "answers": answers, "voices": voiced, "asked": _asked(llm),
            "questions": questions, "failed_sends": failed, "whole": whole, "took": took, "errors": errors}


def _events(body: bytes) -> list[tuple[str, str]]:
    return re.findall(r"^event: (\w+)\ndata: (.*)$", body.decode(), re.M)


async def web(engines, tmp: Path, users: int, per_user: int) -> dict:
    from adapters.settings import Settings
    from bot.wiring import build_services
    from tests.fakes.llm_servers import FakeLLMServer, Reply
    from tests.web_harness import live_server

    async with FakeLLMServer("openai", [Reply(pieces=ANSWER, piece_delay=0.05)]) as llm:
        chat_model = _chat_model(llm.base_url, tmp / "llm")
        settings = Settings(_env_file=None, data_dir=tmp / "web", web_secret="bench-secret", rate_limit_per_minute=0,
                            web_rate_limit_per_address=0)
        services = await build_services(settings, engines=replace(engines, chat_model=chat_model))
        try:
            async with live_server(services) as server:
                async def visitor(u: int) -> list[dict]:
                    out = []
                    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                        page = await (await http.get(server.url + "/")).text()
                        headers = {"X-CSRF-Token": re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)}
                        for n in range(per_user):
                            turn = f"turn-{u:04d}-{n:04d}"
                            form = {"text": _question(u, n), "speak": "0", "turn": turn}
                            r = await http.post(server.url + "/chat/turn", data=form, headers=headers)
                            first = await r.content.readuntil(b"\n\n")
                            r.close()  # the connection drops after the first event
                            seen = _events(first)
                            r = await http.get(f"{server.url}/chat/turn/{turn}?after={len(seen)}")
                            seen += _events(await r.read())
                            # the browser's retry of the same post joins the turn: the same events, made once
                            again = _events(await (await http.post(server.url + "/chat/turn", data=form,
                                                                   headers=headers)).read())
                            out.append({"seen": seen, "again": again})
                    return out

                t0 = time.perf_counter()
                turns = [t for ts in await asyncio.gather(*(visitor(u) for u in range(users))) for t in ts]
                took = time.perf_counter() - t0
                stored = 0
                for user in await services.users.list():
                    if user.id.startswith("web:"):
                        from core.types import ConversationKey

                        stored += await services.history.count(ConversationKey(user.id, user.id))
        finally:
            await services.close()
            await chat_model.aclose()
    answers = [sum(1 for e, _ in t["seen"] if e == "done") for t in turns]
    same = sum(1 for t in turns if t["seen"] == t["again"])
    return {"messages": users * per_user, "answers": answers, "asked": _asked(llm), "same_on_retry": same,
            "questions": [_question(u, n) for u in range(users) for n in range(per_user)], "stored": stored,
            "took": took}


def _line(name: str, run: dict, extra: str) -> list[str]:
    asked = [run["asked"].get(q, 0) for q in run["questions"]]
    dup = sum(max(0, a - 1) for a in run["answers"]) if name == "web" else sum(run["answers"]) - run["messages"]
    per = Counter(run["answers"]) if name == "web" else None
    delivered = (f"answers per turn {dict(sorted(per.items()))}" if per is not None else
                 f"answers per user {run['answers']} (each sent {len(run['questions']) // len(run['answers'])})")
    if "voices" in run:
        delivered += f", voice replies per user {run['voices']}"
    return [f"   {name}: {run['messages']} messages, {delivered}; duplicate deliveries {max(dup, 0)}, "
            f"missing {max(0, -dup) if name != 'web' else sum(1 for a in run['answers'] if a == 0)}",
            f"      model requests per message: min {min(asked)}, max {max(asked)} (total {sum(run['asked'].values())}); "
            + extra + f"; all answered in {run['took']:.1f} s"]


async def section(users: int, per_user: int) -> str:
    import tempfile

    from adapters.settings import Settings
    from bot.wiring import build_engines

    # the retries' warnings are expected here, one per failed send
    logging.basicConfig(level=logging.ERROR, force=True)
    with tempfile.TemporaryDirectory(prefix="doppel-deliveries-") as tmp_name:
        tmp = Path(tmp_name)
        for part in ("tg", "dc", "web"):
            (tmp / part).mkdir()
        engines = build_engines(Settings(_env_file=None, data_dir=tmp / "engines"))
        tg = await telegram(engines, tmp / "tg", users, per_user)
        dc = await discord(engines, tmp / "dc", users, per_user)
        wb = await web(engines, tmp / "web", users, per_user)
    lines = [f"3. deliveries: {users} users x {per_user} typed questions each on every channel, answered by a loopback "
             "OpenAI-compatible server (\"" + ANSWER_TEXT + "\")",
             "   Telegram and Discord: every send method fails once before it succeeds (429 with retry_after, 5xx, "
             "a connection dropped before the call was done, in turn; on Discord also one dropped after it was done, "
             "which its message nonces answer); web: each event stream dropped after its first event, resumed by the "
             "turn's id, then the same turn posted again"]
    lines += _line("telegram", tg, f"{tg['failed_sends']} sends failed first, {tg['whole']} final texts whole")
    lines += _line("discord", dc, f"{dc['failed_sends']} sends failed first, {dc['whole']} texts whole")
    lines += _line("web", wb, f"{wb['same_on_retry']}/{len(wb['answers'])} retried posts got the same events, "
                              f"{wb['stored']} history rows (2 per turn)")
    lines.append("   goal: 0 duplicate deliveries, 1 model request per message")
    return "\n".join(lines)
