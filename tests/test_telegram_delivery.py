"""Telegram update delivery: a crash never loses or repeats an answer; webhook mode; many users at once."""
from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time

import aiohttp

from bot.telegram.webhook import SECRET_HEADER, webhook_secret
from tests.conftest import ROOT
from tests.telegram_support import bot_settings, fake_tg, running_bot, texts_to  # noqa: F401 - a pytest fixture, requested by name

USER = 801


def _env(settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}
    env.update({
        "PYTHONPATH": str(ROOT), "DOPPEL_DATA_DIR": str(settings.data_dir), "DOPPEL_PERSONAS_DIR": str(settings.personas_dir),
        "DOPPEL_PERSONA": settings.persona, "DOPPEL_TELEGRAM_TOKEN": settings.telegram_token.get_secret_value(),
        "DOPPEL_TELEGRAM_API_URL": settings.telegram_api_url, "DOPPEL_TELEGRAM_POLL_TIMEOUT": "2",
        "DOPPEL_THREADS": "1",
    })
    return env


async def test_a_bot_killed_mid_answer_answers_exactly_once_after_a_restart(fake_tg, tmp_path, engines):
    settings = bot_settings(tmp_path, fake_tg)
    # the first bot is a real process, killed with SIGKILL while its answer is on the way
    gate = fake_tg.hold("sendMessage")
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "telegram"], cwd=tmp_path, env=_env(settings),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        update = fake_tg.text_update(USER, "Tell me something nice about the sea.")
        await fake_tg.wait_for(lambda: fake_tg.called("sendChatAction") or proc.poll() is not None, 120)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    fake_tg.release("sendMessage", deliver=False)  # what the dead bot was sending never arrived
    assert not gate.deliver and not texts_to(fake_tg, USER)
    assert update["update_id"] in fake_tg.delivered
    # the bot acknowledged it (so it could go on long-polling) only after keeping it in its own inbox
    inbox = sqlite3.connect(settings.data_dir / "doppel.db").execute("select update_id from pending_updates").fetchall()
    assert inbox == [(update["update_id"],)]

    async with running_bot(settings, engines) as (_app, _services):
        await fake_tg.wait_for(lambda: texts_to(fake_tg, USER), 60)
    assert len(texts_to(fake_tg, USER)) == 1
    assert not fake_tg.updates, "a graceful stop acknowledges what was handled"
    history = await _history_len(settings, engines)
    assert history == 2

    # Telegram handing the same update out again (as after a crash just before acknowledging) changes nothing
    fake_tg.updates.append(update)
    polls = len(fake_tg.called("getUpdates"))
    async with running_bot(settings, engines):
        await fake_tg.wait_for(lambda: len(fake_tg.called("getUpdates")) >= polls + 3, 30)
    assert len(texts_to(fake_tg, USER)) == 1


async def _history_len(settings, engines) -> int:
    from bot.wiring import build_services
    from core.types import ConversationKey

    services = await build_services(settings, engines=engines)
    try:
        return await services.history.count(ConversationKey(f"tg:{USER}", f"tg:{USER}"))
    finally:
        await services.close()


async def test_webhook_mode_answers_each_update_once_and_checks_the_secret(fake_tg, tmp_path, engines, unused_tcp_port):
    url = f"http://127.0.0.1:{unused_tcp_port}/telegram/hook"
    settings = bot_settings(tmp_path, fake_tg, telegram_webhook_url=url, telegram_webhook_port=unused_tcp_port)
    async with running_bot(settings, engines):
        await fake_tg.wait_for(lambda: fake_tg.webhook is not None, 30)
        assert fake_tg.webhook["url"] == url and fake_tg.webhook["secret_token"]
        update = fake_tg.text_update(USER, "/help")
        await fake_tg.wait_for(lambda: texts_to(fake_tg, USER), 30)
        assert not fake_tg.called("getUpdates")

        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=update, headers={SECRET_HEADER: "wrong"}) as resp:
                assert resp.status == 401
            # Telegram repeating an update it thinks was not received: acknowledged, not answered again
            async with http.post(url, json=update, headers={SECRET_HEADER: webhook_secret(settings)}) as resp:
                assert resp.status == 200
        await asyncio.sleep(0.2)
        assert len(texts_to(fake_tg, USER)) == 1


async def test_twenty_users_at_once_all_get_answers(fake_tg, tmp_path, engines):
    users = list(range(900, 920))
    async with running_bot(bot_settings(tmp_path, fake_tg), engines):
        started = time.monotonic()
        for user in users:
            fake_tg.text_update(user, f"Hi, I am user number {user - 899}. How are you?")
        await fake_tg.wait_for(lambda: all(texts_to(fake_tg, u) for u in users), 300)
        elapsed = time.monotonic() - started
    assert all(texts_to(fake_tg, u)[0].strip() for u in users)
    assert not any("went wrong" in texts_to(fake_tg, u)[0] for u in users)
    print(f"20 users answered in {elapsed:.1f} s")
