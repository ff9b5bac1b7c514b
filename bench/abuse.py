"""The web server under abuse, on loopback: hours-long uploads from anonymous clients, and a crowd asking at once.

`doppel web`'s app with the default engines (Whisper, the bundled local model, Piper) runs in its own process
(so its memory is its own), warmed before it takes traffic. Clients come through 127.0.0.1 with
DOPPEL_WEB_TRUSTED_PROXIES=127.0.0.1, each naming its own address in X-Forwarded-For, as clients behind a
reverse proxy do; otherwise every client would share one address and its limits.

1. uploads: UPLOADERS anonymous clients each post a 3-hour Ogg/Opus (7 MB) ROUNDS times and a 30-minute WebM
   that states no length, all at once, while one client fetches a static file every 20 ms: the static
   file's latency (goal p99 <= 0.5 s) and the server's memory growth (peak RSS over the warm baseline,
   goal <= 300 MB).
2. crowd: CROWD clients post a typed question 20 ms apart; the first one's time to its first reply audio
   against one client alone (SINGLES questions one after another, same question), with the default cap on
   answers made at once and, side by side, with no cap (goal: capped <= 2x single).
3. deliveries (bench/abuse_deliveries.py): Telegram, Discord and the web chat with every send failing first or
   the event stream dropped: answers delivered and model requests per message (goal: exactly 1 each).

    .venv/bin/python bench/abuse.py [--uploaders 5] [--rounds 2] [--crowd 50] [--singles 5]
                                    [--users 3] [--per-user 2] [--only deliveries] [--write]

--write puts the report in bench/results/abuse.txt; with --only deliveries, the file's sections 1 and 2 are kept.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp

QUESTION = "What should I cook for dinner tonight?"
NO_CAP_WAIT = 90.0  # seconds the uncapped crowd's first client is waited for; past it the figure reads "> 90"


# ---- the server process ----

async def _serve(port: int, data_dir: str, at_once: int) -> None:
    import uvicorn

    from adapters.settings import Settings
    from bot.common.warmup import ready
    from bot.web.app import create_app
    from bot.wiring import build_services

    settings = Settings(_env_file=None, data_dir=Path(data_dir), web_port=port, web_secret="bench-secret",
                        web_replies_at_once=at_once, web_trusted_proxies=["127.0.0.1"], rate_limit_per_minute=0,
                        web_rate_limit_per_address=0)
    services = await build_services(settings)
    try:
        app = create_app(services)
        await ready(services, "web")
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", proxy_headers=False,
                                timeout_graceful_shutdown=1)
        await uvicorn.Server(config).serve()
    finally:
        await services.close()


class Server:
    def __init__(self, at_once: int) -> None:
        self.at_once = at_once
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tempfile.TemporaryDirectory(prefix="doppel-abuse-")
        self.proc: subprocess.Popen | None = None

    async def __aenter__(self) -> "Server":
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(self.port), self.tmp.name, str(self.at_once)],
                                     cwd=ROOT)
        async with aiohttp.ClientSession() as http:
            for _ in range(1200):
                try:
                    async with http.get(self.url + "/healthz") as r:
                        if r.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError("the server process ended")
                await asyncio.sleep(0.25)
        raise RuntimeError("the server did not become ready")

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.tmp.cleanup()

    def memory(self) -> tuple[float, float]:
        """(current RSS, peak RSS) in MB."""
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) / 1024
        return fields["VmRSS"], fields["VmHWM"]


# ---- clients ----

class Client:
    """An anonymous visitor with its own cookie and its own address (as the trusted proxy reports it)."""

    def __init__(self, url: str, n: int) -> None:
        self.url = url
        self.address = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256 + 1}"
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                          timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
        self.token = ""

    async def open(self) -> "Client":
        async with self.http.get(self.url + "/", headers={"X-Forwarded-For": self.address}) as r:
            self.token = re.search(r'name="csrf-token" content="([^"]+)"', await r.text()).group(1)
        return self

    def post(self, form: aiohttp.FormData):
        return self.http.post(self.url + "/chat/turn", data=form,
                              headers={"X-CSRF-Token": self.token, "X-Forwarded-For": self.address})

    async def close(self) -> None:
        await self.http.close()


def audio_form(data: bytes, name: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("audio", data, filename=name, content_type="application/octet-stream")
    return form


def text_form(text: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("text", text)
    return form


async def first_audio(client: Client, started: float, events: list[str] | None = None) -> float | None:
    """Seconds from `started` to the turn's first reply audio; None if the turn ended without one."""
    async with client.post(text_form(QUESTION)) as r:
        if r.status != 200:
            return None
        while True:
            try:
                chunk = await r.content.readuntil(b"\n\n")
            except (asyncio.IncompleteReadError, aiohttp.ClientPayloadError):
                return None
            event = chunk.split(b"\n", 1)[0].removeprefix(b"event: ").decode()
            if events is not None:
                events.append(chunk.decode())
            if event == "audio":
                return time.perf_counter() - started
            if event in ("done", "failed"):
                return None


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# ---- the measurements ----

async def uploads(server: Server, uploaders: int, rounds: int) -> dict:
    from tests.long_audio import long_recording

    three_hours = long_recording(180, "ogg")
    half_hour_unstated = long_recording(30, "webm")
    clients = [await Client(server.url, 100 + i).open() for i in range(uploaders)]
    baseline, _ = server.memory()
    latencies: list[float] = []
    answers: list[tuple[int, str, float]] = []
    stop = asyncio.Event()

    async def fetch_static() -> None:
        async with aiohttp.ClientSession() as http:
            await (await http.get(server.url + "/static/style.css")).read()
            while not stop.is_set():
                t0 = time.perf_counter()
                async with http.get(server.url + "/static/style.css") as r:
                    await r.read()
                latencies.append(time.perf_counter() - t0)
                await asyncio.sleep(0.02)

    async def upload(client: Client) -> None:
        for data, name in [(three_hours, "three-hours.ogg")] * rounds + [(half_hour_unstated, "half-hour.webm")]:
            t0 = time.perf_counter()
            async with client.post(audio_form(data, name)) as r:
                if r.status != 200:
                    code = (await r.json()).get("code", "?")
                else:  # waited in line first (the stream opened with its place), then refused in the stream
                    body = (await r.read()).decode()
                    found = re.search(r'event: failed\ndata: \{"code": "(\w+)"', body)
                    code = found.group(1) if found else "answered"
                answers.append((r.status, code, time.perf_counter() - t0))

    watcher = asyncio.create_task(fetch_static())
    await asyncio.sleep(0.3)
    t0 = time.perf_counter()
    await asyncio.gather(*(upload(c) for c in clients))
    took = time.perf_counter() - t0
    await asyncio.sleep(0.3)
    stop.set()
    await watcher
    now, peak = server.memory()
    for c in clients:
        await c.close()
    return {"baseline": baseline, "peak": peak, "now": now, "latencies": latencies, "answers": answers, "took": took,
            "sizes": (len(three_hours), len(half_hour_unstated))}


async def singles(server: Server, count: int) -> list[float]:
    out = []
    for i in range(count):
        client = await Client(server.url, 1000 + i).open()
        try:
            t = await first_audio(client, time.perf_counter())
        finally:
            await client.close()
        if t is not None:
            out.append(t)
    return out


async def crowd(server: Server, size: int, wait: float) -> dict:
    clients = [await Client(server.url, 5000 + i).open() for i in range(size)]
    first_events: list[list[str]] = [[] for _ in clients]
    started = time.perf_counter()
    tasks = []
    for i, client in enumerate(clients):
        tasks.append(asyncio.create_task(first_audio(client, started, first_events[i])))
        await asyncio.sleep(0.02)
    try:
        first = await asyncio.wait_for(asyncio.shield(tasks[0]), wait)
    except TimeoutError:
        first = None
    await asyncio.sleep(1.0)  # let the last posts get their first event
    queued = [re.search(r'"place": (\d+)', e[0]) for e in first_events if e and e[0].startswith("event: queued")]
    places = sorted(int(m.group(1)) for m in queued if m)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for client in clients:
        await client.close()
    return {"first": first, "queued": len(places), "last_place": places[-1] if places else 0}


def mean_ci(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}" if values else "-"
    t = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26}.get(len(values), 2.0)
    half = t * statistics.stdev(values) / len(values) ** 0.5
    return f"{statistics.mean(values):.2f} ± {half:.2f}"


async def main(args) -> str:
    from bench.abuse_deliveries import section

    if args.only == "deliveries":
        return await section(args.users, args.per_user)
    lines = ["Web abuse: doppel web (default engines: faster-whisper tiny.en, bundled SmolLM2 GGUF, Piper) on 127.0.0.1, "
             "in its own process, warmed before traffic",
             f"machine: {os.cpu_count()} CPU cores, shared with other work while measuring "
             f"(load average at start {os.getloadavg()[0]:.1f})",
             "command: python bench/abuse.py " + " ".join(sys.argv[1:]), ""]

    async with Server(at_once=2) as server:
        up = await uploads(server, args.uploaders, args.rounds)
        lat = up["latencies"]
        refused = sum(1 for _, code, _ in up["answers"] if code == "audio_too_long")
        slowest = max(t for *_, t in up["answers"])
        growth = up["peak"] - up["baseline"]
        lines += [
            f"1. uploads: {args.uploaders} anonymous clients at once, each {args.rounds} x a 3-hour Ogg/Opus "
            f"({up['sizes'][0] / 2**20:.1f} MiB) + 1 x a 30-min WebM stating no length ({up['sizes'][1] / 2**20:.1f} MiB)",
            f"   refused as too long: {refused}/{len(up['answers'])} (slowest answer {slowest:.2f} s, waiting in line "
            f"included; all uploads done in {up['took']:.1f} s); answers: "
            + ", ".join(sorted({f"{code} x{sum(1 for a in up['answers'] if a[1] == code)}" for _, code, _ in up["answers"]})),
            f"   static file during the uploads: {len(lat)} fetches, p50 {pct(lat, .5) * 1000:.0f} ms, "
            f"p99 {pct(lat, .99) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms   (goal p99 <= 500 ms)",
            f"   server memory: {up['baseline']:.0f} MB warm, peak {up['peak']:.0f} MB, growth {growth:.0f} MB   (goal <= 300 MB)",
            "",
        ]
        print("\n".join(lines), flush=True)
        # one client alone before and after the crowd, so a change in the machine's other load shows
        alone = await singles(server, args.singles)
        capped = await crowd(server, args.crowd, NO_CAP_WAIT)
        await asyncio.sleep(16)  # the crowd's abandoned turns are cancelled after their 15 s grace
        alone += await singles(server, args.singles)

    async with Server(at_once=0) as server:
        uncapped = await crowd(server, args.crowd, NO_CAP_WAIT)

    single = statistics.median(alone)
    lines += [
        f"2. crowd: {args.crowd} clients post \"{QUESTION}\" 20 ms apart; time from the first post to the first "
        "client's first reply audio",
        f"   one client alone, {len(alone)} questions one after another ({args.singles} before the crowd, "
        f"{args.singles} after): median {single:.2f} s "
        f"(mean {mean_ci(alone)} s, 95% CI; all: {', '.join(f'{t:.2f}' for t in alone)})",
    ]
    for name, run in (("cap 2 (DOPPEL_WEB_REPLIES_AT_ONCE default)", capped), ("no cap", uncapped)):
        first = run["first"]
        figure = f"{first:.2f} s = {first / single:.2f}x single" if first is not None else f"> {NO_CAP_WAIT:.0f} s"
        told = f"; {run['queued']} told their place in line (last: {run['last_place']})" if run["queued"] else ""
        lines.append(f"   {args.crowd} at once, {name}: first client's first audio after {figure}{told}")
    lines.append("   goal: capped <= 2x single")
    lines += ["", await section(args.users, args.per_user), f"load average at the end: {os.getloadavg()[0]:.1f}"]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        asyncio.run(_serve(int(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploaders", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--crowd", type=int, default=50)
    parser.add_argument("--singles", type=int, default=5)
    parser.add_argument("--users", type=int, default=3, help="deliveries: users on each channel")
    parser.add_argument("--per-user", type=int, default=2, help="deliveries: questions from each user")
    parser.add_argument("--only", choices=["deliveries"], help="run section 3 alone")
    parser.add_argument("--write", action="store_true", help="write the report to bench/results/abuse.txt")
    args = parser.parse_args()
    report = asyncio.run(main(args))
    print(report)
    if args.write:
        out = ROOT / "bench" / "results" / "abuse.txt"
        if args.only == "deliveries":
            kept = out.read_text(encoding="utf-8").split("\n3. deliveries")[0].rstrip("\n") if out.exists() else ""
            report = (kept + "\n\n" if kept else "") + report + f"\n(section 3: python bench/abuse.py {' '.join(sys.argv[1:])})"
        out.write_text(report + "\n", encoding="utf-8")
        print(json.dumps({"written": str(out)}))
