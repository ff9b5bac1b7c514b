"""Live talk over WebRTC, measured at a scripted client (tests/live_client.py) that speaks real clips.

1. Turn latency: end of the person's speech (the last sample of a clip cut to its speech leaves the client's
   microphone) → first audible answer audio arriving at the client. Beside it, from the same turns, the
   pipeline's own voice-in → first-audio time (the server's `done` event), so what live talk adds (the
   end-of-utterance timeout, WebRTC both ways) is seen apart from how busy the engines were. Each question
   starts a fresh conversation, as in bench/latency.py (a growing history slows the small model's prompt).
2. Barge-in: the person starts speaking (an interrupting clip's first sample leaves the microphone) while an
   answer's word is being heard → the answer audio stops at the client: the first silent frame after the last
   audible one, with silence holding for a second, or the server's 'interrupted' event (sent just after it
   stopped the audio) if that came later, since a quiet frame before it was a pause between words. Speech
   starts at the interrupting clip's first sample; the clips keep up to 50 ms of lead-in before the first
   word, so the figure errs long by that much. A trial where the answer had already ended is not counted.
3. With --avatar-turns: a photo avatar's face track, frames received per second while answers are spoken.
4. With --face-ab N: the same latency as 1, N turns with the demo portrait's face and N without, alternating
   (ABBA), each turn in a fresh session (its own connection, so one arm's face never draws during the other's
   turn); the ratio of the medians is the face's cost to the voice (goal ≤ 1.3).

p50/p95 with 95 % bootstrap intervals. Default engines (tiny.en, SmolLM2 on llama.cpp, Piper), warmed first.

    .venv/bin/python bench/live.py [--turns 10] [--barge-ins 10] [--avatar-turns 3] [--face-ab 6] [--write]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.asr_whisper import speech_only
from adapters.media import decode_audio
from adapters.settings import Settings
from bench.latency import pct
from bot.wiring import build_engines, build_services
from core.types import Audio, ConversationKey
from tests.live_client import AUDIBLE, LiveClient
from tests.speech import speech_clips
from tests.web_harness import live_server


def speech(path: Path) -> Audio:
    audio = decode_audio(path.read_bytes())
    return Audio(speech_only(audio.samples, pad_s=0.05), audio.sample_rate)


def interval(values: list[float], q: float, runs: int = 2000) -> tuple[float, float]:
    """95 % bootstrap interval of the q-quantile."""
    rng = random.Random(0)
    stats = sorted(pct([rng.choice(values) for _ in values], q) for _ in range(runs))
    return stats[int(0.025 * runs)], stats[int(0.975 * runs) - 1]


def summary(name: str, values: list[float], goal: str) -> str:
    if not values:
        return f"{name}: no samples"
    p50, p95 = pct(values, 0.5), pct(values, 0.95)
    (a, b), (c, d) = interval(values, 0.5), interval(values, 0.95)
    return (f"{name}: n={len(values)}  p50 {p50:.3f} s [{a:.3f}, {b:.3f}]  p95 {p95:.3f} s [{c:.3f}, {d:.3f}]  "
            f"min {min(values):.3f}  max {max(values):.3f}  (goal {goal})")


async def answer_finished(client: LiveClient, after: float) -> None:
    """The answer to what was said after `after` has been played to its end (the server listens again)."""
    await client.until(lambda: next((e for t, e in client.events if t > after and e["event"] in ("listening", "failed")),
                                    None), 90)


async def sound_or_refusal(client: LiveClient, after: float) -> float | None:
    """When the answer's first sound arrived; None (logged) when the server answered with no speech."""
    def check():
        sound = next((t for t, rms in client.heard if t > after and rms > AUDIBLE), None)
        if sound is not None:
            return sound
        refused = next((e for t, e in client.events if t > after and e["event"] in ("failed", "listening")), None)
        return refused
    found = await client.until(check, 60)
    if isinstance(found, dict):
        print(f"  no answer: {found}")
        return None
    return found


async def turns(client: LiveClient, clips: list[Audio], log, forget) -> tuple[list[float], list[float]]:
    live, pipeline = [], []
    for i, audio in enumerate(clips):
        await forget()  # each question in a fresh conversation, as bench/latency.py asks them
        said = client.say(audio)
        await asyncio.wait_for(said.done.wait(), 60)
        first = await sound_or_refusal(client, said.ended)
        if first is None:
            continue
        done = await client.event("done", after=said.ended, timeout=60)
        live.append(first - said.ended)
        pipeline.append(done["timings"].get("first_audio", float("nan")))  # from the run's start: ASR included
        log(f"  turn {i + 1:2}: {audio.seconds:4.1f} s said → first answer audio {live[-1]:.3f} s "
            f"(pipeline voice in → first audio {pipeline[-1]:.3f} s)")
        await answer_finished(client, said.ended)
    return live, pipeline


async def barge_ins(client: LiveClient, questions: list[Audio], interruptions: list[Audio],
                    log, forget) -> tuple[list[float], list[float], int]:
    stops, notices, skipped = [], [], 0
    for i, (question, interruption) in enumerate(zip(questions, interruptions)):
        # a fresh conversation each time, as in the turns: with the cut answers in its history the model soon
        # answered in a word, over before anyone could interrupt it
        await forget()
        said = client.say(question)
        await asyncio.wait_for(said.done.wait(), 60)
        first = await sound_or_refusal(client, said.ended)
        if first is None:
            continue
        await asyncio.sleep(max(0.0, first + 0.3 - time.monotonic()))
        try:  # cut in while a word is being heard, not in a pause between two
            await client.until(lambda: True if client.heard and client.heard[-1][1] > AUDIBLE else None, 3.0)
        except TimeoutError:
            pass
        cut = client.say(interruption)
        while cut.started is None:
            await asyncio.sleep(0.005)
        speaks = cut.started  # its first sample: the clip keeps up to 50 ms of lead-in, so this errs long
        stopped = await client.quiet_from(speaks, hold=1.0, timeout=30)
        playing = any(speaks - 0.1 <= t <= speaks and rms > AUDIBLE for t, rms in client.heard)
        if not playing:
            skipped += 1
            log(f"  barge-in {i + 1:2}: the answer had already ended; not counted")
        else:
            told = next((t for t, e in client.events if t > cut.started and e["event"] == "interrupted"), None)
            # the server stops the audio, then sends the event: audio gone quiet before the event was a pause
            # between words, not the stop, so the later of the two counts
            stops.append(max(stopped, told if told is not None else stopped) - speaks)
            if told is not None:
                notices.append(told - speaks)
            log(f"  barge-in {i + 1:2}: answer audio stopped {stops[-1]:.3f} s after the interruption started"
                + (f" (the server's 'interrupted' event came at {notices[-1]:.3f} s)" if told is not None else ""))
        await asyncio.wait_for(cut.done.wait(), 60)
        await answer_finished(client, cut.ended)
    return stops, notices, skipped


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--barge-ins", type=int, default=10)
    parser.add_argument("--client-prefetch", type=int, default=0,
                        help="answer packets the client holds before decoding (aiortc's default is 4, ~100 ms; "
                             "the server takes the microphone with 0)")
    parser.add_argument("--avatar-turns", type=int, default=0, help="then this many turns with a photo avatar's face")
    parser.add_argument("--face-ab", type=int, default=0, help="then this many turns with the demo face and as many without")
    parser.add_argument("--write", action="store_true", help="write bench/results/live.txt")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("bot.web.live").setLevel(logging.INFO)  # sessions opening and ending, and why
    questions = [speech(p) for p, s, _ in speech_clips("en") if 4.0 <= s <= 7.0]
    short = [speech(p) for p, s, _ in speech_clips("en") if 1.8 <= s <= 3.0]
    lines: list[str] = []

    def log(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    log(f"live talk, default engines, {os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.1f}; "
        f"the client decodes answer audio after {args.client_prefetch} packets of prefetch")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp), web_secret="bench-live", language="en")
        engines = build_engines(settings)
        engines.recognizer.warm_up()
        engines.chat_model.warm_up()
        engines.synthesizers[0].warm_up()
        services = await build_services(settings, engines=engines)
        try:
            async with live_server(services) as server:
                client = LiveClient(server.url, receive_prefetch=args.client_prefetch)
                await client.connect()
                try:
                    await answer_finished_or_warm(client, questions[-1])
                    log("1. end of speech → first answer audio at the client")
                    sessions = server.app.state.live.sessions

                    async def forget() -> None:
                        user = sessions.all()[0].user
                        await services.history.reset(ConversationKey(user, user))

                    live, pipeline = await turns(client, questions[: args.turns], log, forget)
                    log("2. barge-in: interrupting speech starts → answer audio stops at the client")
                    stops, notices, skipped = await barge_ins(client, questions[args.turns:][: args.barge_ins] or questions,
                                                     short[: args.barge_ins], log, forget)
                finally:
                    await client.close()
            if args.avatar_turns:
                log("3. with an avatar")
                await faces(engines, questions[: args.avatar_turns], args, log)
            if args.face_ab:
                log("4. end of speech → first answer audio, with the demo face and without, alternating")
                await face_ab(engines, questions[: args.face_ab], args, log)
        finally:
            await services.close()
            await engines.close()
    log(summary("end of speech → first answer audio (live, at the client)", live, "p50 ≤ 1.5 s"))
    log(summary("  the pipeline alone in the same turns (voice in → first audio)", pipeline, "—"))
    if live:
        log(f"  live adds, median of per-turn differences: {pct([a - b for a, b in zip(live, pipeline)], 0.5):.3f} s "
            f"(end-of-utterance timeout {settings.live_end_of_utterance} s, WebRTC both ways)")
    log(summary("barge-in: interruption starts → answer audio stops", stops, "p95 ≤ 0.200 s") + f"; {skipped} not counted")
    log(summary("  the server's 'interrupted' event at the client, same trials", notices, "—"))
    log(f"load average at the end {os.getloadavg()[0]:.1f}")
    if args.write:
        out = ROOT / "bench" / "results" / "live.txt"
        out.write_text("command: .venv/bin/python bench/live.py " + " ".join(sys.argv[1:]) + "\n" + "\n".join(lines) + "\n")
        print(f"written to {out}")


async def faces(engines, questions: list[Audio], args, log) -> None:
    """3. With a photo avatar at DOPPEL_AVATAR_LIVE_SIZE (512 px): video frames received per second while answers
    are spoken (first answer audio → the server listening again), and over the whole session."""
    import io

    from PIL import Image

    from bot.common.avatars import add_photo_avatar
    from geneface.testclip import portrait

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp), web_secret="bench-live", language="en", avatar="astro")
        services = await build_services(settings, engines=engines)
        try:
            buf = io.BytesIO()
            Image.fromarray(portrait(512)[0]).save(buf, format="PNG")
            await add_photo_avatar(services, "astro", buf.getvalue())
            async with live_server(services) as server:
                client = LiveClient(server.url, receive_prefetch=args.client_prefetch, video=True)
                await client.connect()
                opened = time.monotonic()
                rates = []
                try:
                    for i, audio in enumerate(questions):
                        said = client.say(audio)
                        await asyncio.wait_for(said.done.wait(), 60)
                        first = await sound_or_refusal(client, said.ended)
                        if first is None:
                            continue
                        await answer_finished(client, said.ended)
                        done = max(t for t, e in client.events if e["event"] in ("listening", "failed"))
                        shown = [t for t, _ in client.frames if first <= t <= done]
                        rates.append(len(shown) / (done - first))
                        log(f"  answer {i + 1}: {rates[-1]:.1f} frames/s received over {done - first:.1f} s of speech")
                    whole = len(client.frames) / (time.monotonic() - opened)
                    size = f"{client.frames[-1][1].width}x{client.frames[-1][1].height}" if client.frames else "-"
                finally:
                    await client.close()
            log(f"face track ({size} px, photo engine): while speaking p50 {pct(rates, 0.5):.1f} frames/s "
                f"(min {min(rates):.1f}); the whole session {whole:.1f} frames/s (goal 25 on one GPU)")
        finally:
            await services.close()


async def face_ab(engines, questions: list[Audio], args, log) -> None:
    """4. First answer audio with and without the demo portrait's live face, turns alternating ABBA."""
    from bot.common.avatars import add_photo_avatar
    from bot.common.demo import DEMO_PORTRAIT

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp), web_secret="bench-live", language="en", avatar="demo")
        services = await build_services(settings, engines=engines)
        took: dict[bool, list[float]] = {False: [], True: []}
        try:
            await add_photo_avatar(services, "demo", DEMO_PORTRAIT.read_bytes())
            async with live_server(services) as server:
                for i, audio in enumerate(q for q in questions for _ in (0, 1)):
                    with_face = (i % 4) in (1, 2)  # ABBA: neither arm always goes first
                    client = LiveClient(server.url, receive_prefetch=args.client_prefetch, video=with_face)
                    await client.connect()
                    try:
                        for session in server.app.state.live.sessions.all():
                            await services.history.reset(ConversationKey(session.user, session.user))
                        said = client.say(audio)
                        await asyncio.wait_for(said.done.wait(), 60)
                        first = await sound_or_refusal(client, said.ended)
                        if first is not None:
                            took[with_face].append(first - said.ended)
                            log(f"  turn {i + 1:2} {'with' if with_face else 'without'} the face: first answer audio "
                                f"{took[with_face][-1]:.3f} s (load {os.getloadavg()[0]:.1f})")
                            await answer_finished(client, said.ended)
                    finally:
                        await client.close()
        finally:
            await services.close()
    log(summary("  without a face", took[False], "—"))
    log(summary("  with the demo face (photo engine, 512 px)", took[True], "—"))
    if took[False] and took[True]:
        log(f"  with / without, ratio of medians: {pct(took[True], 0.5) / pct(took[False], 0.5):.2f} (goal ≤ 1.3)")


async def answer_finished_or_warm(client: LiveClient, audio: Audio) -> None:
    """One untimed turn first: the first WebRTC frames and the first answer in a session carry one-off costs."""
    said = client.say(audio)
    await asyncio.wait_for(said.done.wait(), 60)
    await answer_finished(client, said.ended)


if __name__ == "__main__":
    asyncio.run(main())
