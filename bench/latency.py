"""Latency of the reply pipeline on real voice questions, with engines kept loaded vs reloaded for every sentence.

Prints p50/p95 of each stage and of voice-in → first audio chunk out, then the same replies made with the
speech engine loaded anew for each sentence (in-process), and with a fresh process per sentence (the seed's
container-per-sentence flow, without Docker's own start-up cost).

    .venv/bin/python bench/latency.py [--clips 10] [--out bench/results/latency.txt]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.media import decode_audio
from adapters.settings import Settings
from adapters.tts_piper import PiperSynthesizer, bundled_voice
from bot.wiring import build_engines, build_services
from core.pipeline import ReplyRequest
from core.types import Audio, AudioFrame, ConversationKey, ReplyDone
from tests.speech import speech_clips


class ReloadEachSentence:
    """Loads the Piper voice anew for every sentence: what a per-sentence worker pays."""

    def supports(self, language: str) -> bool:
        return language.startswith("en")

    def warm_up(self) -> None:
        """Nothing is kept between sentences, so nothing to load ahead."""

    async def synthesize(self, text: str, language: str) -> Audio:
        model, config = bundled_voice()
        return await PiperSynthesizer(model, config).synthesize(text, language)


class ProcessEachSentence:
    """A fresh Python process per sentence that loads the voice, speaks, writes a WAV and exits."""

    SCRIPT = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]);"
        "from adapters.tts_piper import PiperSynthesizer, bundled_voice;"
        "from adapters.media import encode_wav;"
        "a = PiperSynthesizer(*bundled_voice()).synthesize_sync(sys.argv[2]);"
        "open(sys.argv[3], 'wb').write(encode_wav(a))"
    )

    def supports(self, language: str) -> bool:
        return language.startswith("en")

    def warm_up(self) -> None:
        """Nothing is kept between sentences, so nothing to load ahead."""

    async def synthesize(self, text: str, language: str) -> Audio:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "s.wav"
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", self.SCRIPT, str(ROOT), text, str(out))
            await proc.wait()
            return decode_audio(out.read_bytes(), 22050)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


async def run_mode(services, clips, synthesizers=None, voice: str | None = None) -> dict[str, list[float]]:
    pipeline = services.pipeline
    if synthesizers is not None:
        pipeline.synthesizers = synthesizers
    stats: dict[str, list[float]] = {}
    persona = services.personas.get("default")
    for i, (path, _seconds, _) in enumerate(clips):
        audio = decode_audio(path.read_bytes())
        request = ReplyRequest(key=ConversationKey(f"bench:{i}", f"bench:{i}"), persona=persona, audio=audio, language="en",
                               voice=voice)
        sentences = 0
        async for frame in pipeline.run(request):
            if isinstance(frame, AudioFrame):
                sentences += 1
            if isinstance(frame, ReplyDone):
                for t in frame.timings:
                    stats.setdefault(t.stage, []).append(t.seconds)
        stats.setdefault("sentences", []).append(sentences)
        stats.setdefault("tts_per_sentence", []).append(stats["tts"][-1] / max(1, sentences))
        await services.history.reset(request.key)  # every clip starts a fresh conversation in every mode
    return stats


def median_ci(values: list[float], n: int = 2000) -> tuple[float, float]:
    """Bootstrap 95 % interval of the median: ten replies pin a p50 down only so far."""
    import numpy as np

    x = np.asarray(values, float)
    medians = np.median(np.random.default_rng(0).choice(x, (n, len(x))), axis=1)
    return float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))


def table(title: str, stats: dict[str, list[float]]) -> list[str]:
    lines = [title, f"  {'stage':<20}{'p50 s':>9}{'p95 s':>9}"]
    for stage in ("asr", "llm_first_token", "llm_first_sentence", "llm", "tts", "tts_per_sentence", "convert", "first_audio", "total"):
        if stage in stats:
            lines.append(f"  {stage:<20}{pct(stats[stage], .5):>9.3f}{pct(stats[stage], .95):>9.3f}")
    lines.append(f"  sentences per reply: {statistics.mean(stats['sentences']):.1f}")
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latency.txt"))
    parser.add_argument("--demo-voice", action="store_true",
                        help="the shipped demo voice (make demo) against the base TTS alone, side by side")
    parser.add_argument("--asr", action="store_true",
                        help="the English decoding now against the one before (greedy, no guard), interleaved")
    parser.add_argument("--rounds", type=int, default=2, help="with --asr: passes over the clips")
    args = parser.parse_args()
    if args.demo_voice:
        return await demo_voice(args)
    if args.asr:
        return await asr_settings(args)

    clips = [c for c in speech_clips("en") if 4.0 <= c[1] <= 7.0][: args.clips]
    with tempfile.TemporaryDirectory() as tmp:
        _engines, services = await warm_services(Path(tmp))
        try:
            persistent = await run_mode(services, clips)
            reloaded = await run_mode(services, clips, [ReloadEachSentence()])
            per_process = await run_mode(services, clips, [ProcessEachSentence()])
        finally:
            await services.close()

    lines = [
        f"doppel reply latency, {len(clips)} real voice questions of {min(c[1] for c in clips):.1f}-{max(c[1] for c in clips):.1f} s "
        f"(mean {statistics.mean(c[1] for c in clips):.1f} s), default offline engines, {os.cpu_count()} CPU cores",
        "",
        *table("engines loaded once (doppel):", persistent),
        "",
        *table("speech engine reloaded for every sentence (in-process):", reloaded),
        "",
        *table("a fresh process for every sentence (the seed's container-per-sentence flow, minus Docker):", per_process),
        "",
        f"first audio p50: persistent {pct(persistent['first_audio'], .5):.2f} s (goal <= 1.5 s)",
        f"ratio reload/persistent: first audio {pct(reloaded['first_audio'], .5) / pct(persistent['first_audio'], .5):.2f}x, "
        f"speech per sentence {pct(reloaded['tts_per_sentence'], .5) / pct(persistent['tts_per_sentence'], .5):.2f}x",
        f"ratio process-per-sentence/persistent: first audio "
        f"{pct(per_process['first_audio'], .5) / pct(persistent['first_audio'], .5):.2f}x, "
        f"speech per sentence {pct(per_process['tts_per_sentence'], .5) / pct(persistent['tts_per_sentence'], .5):.2f}x",
        "(answers are sampled, so sentence counts differ a little between modes; per-sentence figures compare like with like)",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


async def warm_services(data_dir: Path):
    """Engines with every model loaded before timing, as a long-lived server has them."""
    settings = Settings(_env_file=None, data_dir=data_dir)
    engines = build_engines(settings)
    engines.recognizer.warm_up()
    engines.chat_model.warm_up()
    engines.synthesizers[0].warm_up()
    return engines, await build_services(settings, engines=engines)


async def demo_voice(args) -> None:
    from dataclasses import replace

    from bot.common.demo import install_demo

    clips = [c for c in speech_clips("en") if 4.0 <= c[1] <= 7.0][: args.clips]
    with tempfile.TemporaryDirectory() as tmp:
        _engines, services = await warm_services(Path(tmp))
        try:
            voice = await install_demo(services)
            await run_mode(services, clips[:1], voice=voice)  # loads the voice (a server has it loaded)
            clause_config = services.pipeline.config
            sentence_config = replace(clause_config, converted_first_clause=0)
            base, cloned, whole = {}, {}, {}
            for clip in clips:  # interleaved, so all three see the same machine load
                for stats, v, config in ((base, None, clause_config), (cloned, voice, clause_config),
                                         (whole, voice, sentence_config)):
                    services.pipeline.config = config
                    for k, vals in (await run_mode(services, [clip], voice=v)).items():
                        stats.setdefault(k, []).extend(vals)
            services.pipeline.config = clause_config
        finally:
            await services.close()
    demo_ci, base_ci, whole_ci = (median_ci(m["first_audio"]) for m in (cloned, base, whole))
    lines = [
        f"doppel reply latency with the demo voice, {len(clips)} real voice questions, {os.cpu_count()} CPU cores",
        "", *table("base TTS (Piper) alone:", base), "",
        *table("demo voice (lite), first piece a clause where the answer has one (core/pipeline.py):", cloned), "",
        *table("demo voice (lite), whole sentences only:", whole), "",
        f"first audio p50 (95 % CI): demo voice {pct(cloned['first_audio'], .5):.2f} s ({demo_ci[0]:.2f}..{demo_ci[1]:.2f}), "
        f"demo voice by whole sentences {pct(whole['first_audio'], .5):.2f} s ({whole_ci[0]:.2f}..{whole_ci[1]:.2f}), "
        f"base TTS {pct(base['first_audio'], .5):.2f} s ({base_ci[0]:.2f}..{base_ci[1]:.2f}); goal <= 1.5 s",
        f"ratios of the p50s: demo/base {pct(cloned['first_audio'], .5) / pct(base['first_audio'], .5):.2f}x, "
        f"clause/whole sentences {pct(cloned['first_audio'], .5) / pct(whole['first_audio'], .5):.2f}x",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out != str(ROOT / "bench" / "results" / "latency.txt"):
        Path(args.out).write_text(text + "\n")

def ratio_ci(a: list[float], b: list[float], n: int = 2000) -> tuple[float, float, float]:
    """median(a)/median(b) over paired replies (the same clip, one after the other), 95 % interval resampling pairs."""
    import numpy as np

    x, y = np.asarray(a, float), np.asarray(b, float)
    pick = np.random.default_rng(1).integers(0, len(x), (n, len(x)))
    ratios = np.median(x[pick], axis=1) / np.median(y[pick], axis=1)
    return float(np.median(x) / np.median(y)), float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))


async def asr_settings(args) -> None:
    """First audio with tiny.en decoding as configured now (beam 5, the guard) and as before (greedy, no guard):
    each clip goes through both in turn, the first arm alternating, so both see the same machine load."""
    from adapters.asr_whisper import Decoding

    clips = [c for c in speech_clips("en") if 4.0 <= c[1] <= 7.0][: args.clips]
    with tempfile.TemporaryDirectory() as tmp:
        engines, services = await warm_services(Path(tmp))
        recognizer = engines.recognizer
        now = recognizer.english
        arms = {"before: greedy, no guard": Decoding(beam_size=1, guard=False), f"now: {now.describe()}": now}
        stats: dict[str, dict[str, list[float]]] = {name: {} for name in arms}
        loads = [os.getloadavg()[0]]
        try:
            await run_mode(services, clips[:1])  # first calls pay for lazy set-up a server has behind it
            for i, clip in enumerate(clips * args.rounds):
                names = list(arms)
                for name in names[i % len(names):] + names[:i % len(names)]:
                    recognizer.english = arms[name]
                    for k, vals in (await run_mode(services, [clip])).items():
                        stats[name].setdefault(k, []).extend(vals)
                loads.append(os.getloadavg()[0])
        finally:
            recognizer.english = now
            await services.close()
    before = next(iter(arms))
    lines = [f"bench/latency.py --asr: {len(clips)} real English voice questions of "
             f"{min(c[1] for c in clips):.1f}-{max(c[1] for c in clips):.1f} s x {args.rounds} rounds, each through "
             f"both English decodings in turn (interleaved), default offline engines, {os.cpu_count()} CPU cores "
             f"shared with other work: 1-min load {min(loads):.1f}-{max(loads):.1f} (median {statistics.median(loads):.1f})", ""]
    for name in arms:
        lines += table(f"{name}:", stats[name]) + [""]
    for stage in ("asr", "first_audio"):
        for name in arms:
            lo, hi = median_ci(stats[name][stage])
            ratio, rlo, rhi = ratio_ci(stats[name][stage], stats[before][stage])
            lines.append(f"{stage:<12} p50 {pct(stats[name][stage], .5):.2f} s [95 % CI {lo:.2f}, {hi:.2f}]   "
                         f"x{ratio:.2f} [{rlo:.2f}, {rhi:.2f}] of before   {name}")
    text = "\n".join(lines)
    print(text)
    if args.out != str(ROOT / "bench" / "results" / "latency.txt"):
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    asyncio.run(main())
