"""Telegram under load: N users each send a real voice note at once; how long until each gets its voice note back.

The real aiogram bot with the default engines (Whisper, the bundled local model, Piper) runs against the fake
Bot API server on 127.0.0.1. N=1 is measured over several single messages one after another, N=20 as one
burst of 20 different users, with the default cap on answers made at once and again with no cap; all in
this one run, after a warm-up reply that loads the models.

    .venv/bin/python bench/telegram_load.py [--users 20] [--singles 5] [--out bench/results/telegram_load.txt]
"""
from __future__ import annotations

import argparse
import math
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.settings import Settings
from bot.telegram.app import TelegramBot
from bot.wiring import build_engines, build_services
from tests.speech import speech_clips
from storage.updates import HandledUpdates
from tests.fakes.telegram_api import FakeTelegram

TIMEOUT = 900.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def burst(fake: FakeTelegram, handled: HandledUpdates, users: list[int], clips: list[bytes]
                ) -> tuple[list[float], list[float], int]:
    """Every user sends a voice note at the same moment; latency to their text and to their voice note.

    A user whose update was handled without a voice note got an error reply: that counts as an error.
    """
    sent_at, update_of = {}, {}
    for user, clip in zip(users, clips):
        update_of[user] = fake.voice_update(user, clip, duration=5)["update_id"]
        sent_at[user] = time.monotonic()
    deadline = time.monotonic() + TIMEOUT
    pending = set(users)
    while pending and time.monotonic() < deadline:
        for user in list(pending):
            if fake.sent_to(user, "sendVoice") or await handled.seen(update_of[user]):
                pending.discard(user)
        await asyncio.sleep(0.1)
    to_voice, to_text, errors = [], [], 0
    for user in users:
        voice = fake.sent_to(user, "sendVoice")
        if not voice:
            errors += 1
            print(f"user {user}: no voice note; the bot said {[s.text for s in fake.sent_to(user, 'sendMessage')]}")
            continue
        to_voice.append(voice[0].at - sent_at[user])
        to_text.append(fake.sent_to(user, "sendMessage")[0].at - sent_at[user])
    return to_voice, to_text, errors


class RunningBot:
    """One bot on its own fresh database, sharing the loaded engines."""

    def __init__(self, fake: FakeTelegram, engines, data_dir: Path, at_once: int) -> None:
        self.settings = Settings(_env_file=None, data_dir=data_dir, telegram_token=fake.token,
                                 telegram_api_url=fake.base_url, telegram_poll_timeout=2, rate_limit_per_minute=0,
                                 telegram_replies_at_once=at_once)
        self.engines = engines

    async def __aenter__(self) -> HandledUpdates:
        self.services = await build_services(self.settings, engines=self.engines)
        self.app = TelegramBot(self.services)
        self.task = asyncio.create_task(self.app.run())
        return HandledUpdates(self.services.sessions, "telegram")

    async def __aexit__(self, *exc) -> None:
        self.app.stop()
        await asyncio.wait_for(self.task, 120)
        await self.services.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--singles", type=int, default=8)
    parser.add_argument("--caps", type=lambda v: [int(x) for x in v.split(",")], default=None,
                        help="answers made at once for the N-user bursts, comma-separated, 0 = no cap "
                             "(default: the setting, then no cap)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "telegram_load.txt"))
    args = parser.parse_args()

    clips = [p.read_bytes() for p, seconds, _ in speech_clips("en", 2.0) if seconds <= 6.0]
    default_cap = Settings(_env_file=None).telegram_replies_at_once
    args.caps = args.caps or [default_cap, 0]
    fake = FakeTelegram()
    await fake.start()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        engines = build_engines(Settings(_env_file=None, data_dir=Path(tmp) / "engines"))
        try:
            async with RunningBot(fake, engines, Path(tmp) / "a", default_cap) as handled:
                await burst(fake, handled, [1], clips[:1])  # warm-up: loads the models, not counted
                warm = time.perf_counter() - started
                singles: tuple[list[float], list[float], int] = ([], [], 0)
                cpu0 = time.process_time()
                for i in range(args.singles):
                    v, t, e = await burst(fake, handled, [100 + i], [clips[(i + 1) % len(clips)]])
                    singles = (singles[0] + v, singles[1] + t, singles[2] + e)
                rows.append(("N=1", *singles, (time.process_time() - cpu0) / args.singles))
            # the same burst of users under each cap on answers made at once (0: none), each on a fresh bot
            for n, cap in enumerate(args.caps):
                async with RunningBot(fake, engines, Path(tmp) / f"cap{n}", cap) as handled:
                    users = [1000 * (n + 1) + i for i in range(args.users)]
                    cpu0 = time.process_time()
                    result = await burst(fake, handled, users, [clips[i % len(clips)] for i in range(args.users)])
                    rows.append((f"N={args.users} cap {cap or 'none'}", *result, (time.process_time() - cpu0) / args.users))
        finally:
            await fake.stop()

    lines = [
        "Telegram load: real aiogram bot + default engines (faster-whisper tiny.en, bundled SmolLM2 GGUF, Piper) "
        "against the fake Bot API server on 127.0.0.1",
        f"machine: {os.cpu_count()} CPU cores, shared with other work while measuring; warm-up incl. model load {warm:.1f} s",
        f"command: python {' '.join(sys.argv)}",
        "latency = user's voice note injected -> the bot's voice note received by the server; each user one message",
        f"N=1: {args.singles} single messages one after another; N={args.users}: {args.users} users at the same moment; "
        f"cap: answers made at once (DOPPEL_TELEGRAM_REPLIES_AT_ONCE, default {default_cap}; none: all at once)",
        "answers differ in length (1 to 3 sentences), so with few samples p95 is close to the longest answer",
        "",
        f"{'case':<16}{'replies':>8}{'errors':>8}{'text p50':>10}{'text p95':>10}{'voice p50':>11}{'voice p95':>11}"
        f"{'last':>8}{'CPU s/reply':>13}",
    ]
    for name, voice, text, errors, cpu in rows:
        if voice:
            lines.append(f"{name:<16}{len(voice):>8}{errors:>8}{pct(text, .5):>10.2f}{pct(text, .95):>10.2f}"
                         f"{pct(voice, .5):>11.2f}{pct(voice, .95):>11.2f}{max(voice):>8.2f}{cpu:>13.2f}")
        else:
            lines.append(f"{name:<16}{0:>8}{errors:>8}  (no voice notes)")
    single = rows[0][1]
    if single and all(r[1] for r in rows[1:]):
        cpu_single = rows[0][4]
        cores = os.cpu_count() or 1
        nth = math.ceil(0.95 * args.users)
        floor = nth * cpu_single / cores
        ratios = ", ".join(f"{pct(r[1], .95) / pct(single, .95):.2f}x ({r[0]})" for r in rows[1:])
        lines += [
            "",
            f"p95 ratio N={args.users} / N=1: {ratios}; goal <= 3x",
            "p50 ratio N={} / N=1: {}".format(args.users, ", ".join(
                f"{pct(r[1], .5) / pct(single, .5):.2f}x ({r[0]})" for r in rows[1:])),
            f"errors: {sum(r[3] for r in rows)} (goal 0)",
            f"floor: the {nth}th of {args.users} answers needs {nth} x {cpu_single:.2f} CPU s / {cores} cores = {floor:.1f} s "
            f"of engine work first, so on this machine p95(N={args.users}) >= {floor / pct(single, .95):.1f}x p95(N=1) "
            "however the bot schedules: the engines are CPU-bound, and the goal needs faster engines (a GPU).",
        ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
