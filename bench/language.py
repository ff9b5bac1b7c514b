"""Answers in the user's language, measured per language, and the recognizer settings behind them.

1. Answers: en/fr/es questions are real voice clips of the shared speech set, zh questions are typed. Each goes
   through the real dialogue (DOPPEL_* defaults: DOPPEL_LANGUAGE=en, the default DOPPEL_LANGUAGES) with a loopback
   OpenAI-compatible model that answers in the language its system prompt asks for (tests/fakes/polyglot_llm.py).
   Per language: the answer's language (by the pipeline, and by Lingua on the answer text), the language the model
   was asked for, and the spoken answer read back by the bundled Whisper (language detected among
   DOPPEL_LANGUAGES, then transcribed): WER for en/fr/es, CER for zh.
2. Recognition: WER of the default English model on the shared en clips, and of Whisper base on fr/es, greedy
   against beam 5 (both at temperature 0), side by side on the same clips; how often tiny.en's confidence sends
   an English clip to the language check, and how often it catches a French or Spanish one.

    .venv/bin/python bench/language.py [--questions 20] [--clips 20] [--out bench/results/language.txt]

Word error rates use jiwer with a small local normalisation (case, punctuation, spaces; digits read out for
Chinese, traditional characters made simplified); the project's shared normaliser can replace it.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import random
import re
import statistics
import sys
import tempfile
import time
import unicodedata
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jiwer  # noqa: E402

from adapters import asr_whisper  # noqa: E402
from adapters.media import decode_audio  # noqa: E402
from adapters.tts_mandarin import chinese_number  # noqa: E402
from bot.common.dialogue import Dialogue, Incoming  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.wiring import Engines, build_chat_model, build_engines, build_services  # noqa: E402
from core import audio as audio_ops  # noqa: E402
from core.languages import choose_language, english_name  # noqa: E402
from core.pipeline import PipelineConfig  # noqa: E402
from core.types import AudioFrame, ReplyDone, TranscriptFrame  # noqa: E402
from tests.conftest import speech_clips  # noqa: E402
from tests.fakes.polyglot_llm import PolyglotServer  # noqa: E402
from tests.test_llm_providers import KEYS, MODELS  # noqa: E402

# a sentence of the language as the decoder's context: it sets the script, accents and punctuation
PROMPTS = {"fr": "Bonjour, voici un message en français.", "es": "Hola, este es un mensaje en español."}

ZH_QUESTIONS = [
    "你早上一般吃什么？", "图书馆几点开门？", "今天下午会下雨吗？", "你最喜欢哪个季节？", "去火车站要多久？",
    "晚饭以后做什么好？", "我们在哪里见面？", "你睡觉前做什么？", "博物馆有什么新展览？", "面条要煮多久？",
    "这个周末你想做什么？", "你的朋友去哪里工作？", "学中文什么最难？", "你晚上喜欢做什么？", "哪家饭店好吃？",
    "明天要上班吗？", "你怎么去学校？", "这里冬天冷吗？", "我现在应该做什么？", "你喜欢和我聊天吗？",
]


# ---- scoring ----


def normalise(text: str, language: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    if language == "zh":
        import zhconv

        text = zhconv.convert(text, "zh-cn")
        text = re.sub(r"\d+(?:\.\d+)?", lambda m: chinese_number(m.group()), text)
        return " ".join(c for c in text if c.isalnum())  # characters as words: jiwer's WER is then the CER
    text = re.sub(r"\d+", lambda m: _spelled(int(m.group()), language), text)
    text = text.replace("’", "'").replace("-", " ")
    text = "".join(" " if unicodedata.category(c).startswith("P") and c != "'" else c for c in text)
    return " ".join(text.split())


def _spelled(number: int, language: str) -> str:
    try:
        from num2words import num2words
    except ImportError:  # without it, digits stay digits (and count as errors against spelled-out words)
        return str(number)
    return num2words(number, lang=language)


def error_rate(refs: list[str], hyps: list[str], language: str) -> float:
    pairs = [(normalise(r, language), normalise(h, language)) for r, h in zip(refs, hyps, strict=True)]
    pairs = [(r, h if h else "∅") for r, h in pairs if r]
    return jiwer.wer([r for r, _ in pairs], [h for _, h in pairs])


def bootstrap(refs: list[str], hyps: list[str], language: str, runs: int = 1000) -> tuple[float, float]:
    """95 % interval of the corpus error rate, resampling utterances."""
    rng = random.Random(0)
    n = len(refs)
    rates = sorted(error_rate(*zip(*[(refs[i], hyps[i]) for i in (rng.randrange(n) for _ in range(n))]), language)
                   for _ in range(runs))
    return rates[int(0.025 * runs)], rates[int(0.975 * runs) - 1]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def picked(language: str, n: int, offset: int = 0):
    clips = speech_clips(language, min_seconds=2.0)
    step = max(1, len(clips) // n)
    return clips[offset::step][:n]


# ---- 1. answers ----


async def answers(engines: Engines, questions: int, log) -> None:
    async with PolyglotServer() as server:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(_env_file=None, data_dir=Path(tmp) / "var", llm_provider="openai",
                                llm_model=MODELS["openai"], openai_base_url=server.base_url, openai_api_key=KEYS["openai"])
            own = Engines(recognizer=engines.recognizer, chat_model=build_chat_model(settings),
                          synthesizers=engines.synthesizers, converters={}, renderer=None,
                          text_languages=engines.text_languages)
            services = await build_services(settings, engines=own)
            dialogue = Dialogue(services)
            allowed = tuple(settings.languages)
            log(f"DOPPEL_LANGUAGE={settings.language}  DOPPEL_LANGUAGES={','.join(allowed)}  persona=default (auto)")
            log("lang  heard  answer(pipeline)  answer(Lingua)  asked  read-back lang   error rate [95% CI]        first audio p50")
            try:
                for language in ("en", "fr", "es", "zh"):
                    if language == "zh":
                        inputs = [dict(text=q) for q in ZH_QUESTIONS[:questions]]
                    else:
                        inputs = [dict(audio=p.read_bytes()) for p, _, _ in picked(language, questions)]
                    heard = pipeline_ok = text_ok = asked_ok = back_ok = 0
                    refs, hyps, first_audio = [], [], []
                    for i, given in enumerate(inputs):
                        user = f"bench:{language}:{i}"  # a new chat each time: no last language to lean on
                        asked_before = len(server.asked)
                        frames = [f async for f in dialogue.reply(Incoming(user, user, **given))]
                        done = frames[-1]
                        assert isinstance(done, ReplyDone)
                        transcript = next((f.transcript for f in frames if isinstance(f, TranscriptFrame)), None)
                        heard += (transcript.language if transcript else done.user_language) == language
                        pipeline_ok += done.language == language
                        scores = engines.text_languages.scores(done.text, allowed)
                        text_ok += bool(scores) and max(scores, key=scores.get) == language
                        asked_ok += server.asked[asked_before:] == [english_name(language)]
                        spoken = audio_ops.join([f.audio for f in frames if isinstance(f, AudioFrame)])
                        back_language = choose_language(engines.recognizer.detect_language_sync(spoken), allowed=allowed)
                        back_ok += back_language == language
                        refs.append(done.text)
                        hyps.append(engines.recognizer.transcribe_sync(spoken, back_language).text)
                        if done.timing("first_audio") is not None:
                            first_audio.append(done.timing("first_audio"))
                    n = len(inputs)
                    rate = error_rate(refs, hyps, language)
                    lo, hi = bootstrap(refs, hyps, language)
                    kind = "CER" if language == "zh" else "WER"
                    lo_ok, _ = wilson(pipeline_ok, n)
                    log(f"{language:4}  {heard:2}/{n}  {pipeline_ok:2}/{n} (≥{lo_ok:.2f})     {text_ok:2}/{n}          "
                        f"{asked_ok:2}/{n}  {back_ok:2}/{n}            {kind} {rate:6.1%} [{lo:.1%}, {hi:.1%}]"
                        f"    {statistics.median(first_audio):.2f} s")
                    worst = max(range(n), key=lambda i: error_rate([refs[i]], [hyps[i]], language))
                    log(f"      worst read-back: {refs[worst]!r} → {hyps[worst]!r}")
            finally:
                await services.close()


# ---- 2. recognition ----


def recognition(engines: Engines, clips: int, log) -> None:
    recognizer = engines.recognizer
    threshold = PipelineConfig().recheck_confidence
    refs, hyps, rechecked = [], [], 0
    for path, _, text in picked("en", clips):
        transcript = recognizer.transcribe_sync(decode_audio(path.read_bytes()), "en")
        refs.append(text)
        hyps.append(transcript.text)
        rechecked += transcript.confidence < threshold
    lo, hi = bootstrap(refs, hyps, "en")
    log(f"en  tiny.en greedy (default): WER {error_rate(refs, hyps, 'en'):.1%} [{lo:.1%}, {hi:.1%}] on {len(refs)} clips; "
        f"{rechecked}/{len(refs)} below confidence {threshold} (sent to the language check)")
    configured = recognizer.multilingual_beam_size
    for language in ("fr", "es"):
        chosen = picked(language, clips)
        audios = [decode_audio(p.read_bytes()) for p, _, _ in chosen]
        texts = [t for _, _, t in chosen]
        results = {}
        for name, beam, prompt in (("greedy", 1, None), ("beam 5", 5, None), ("beam 5 + prompt", 5, PROMPTS[language])):
            recognizer.multilingual_beam_size = beam
            asr_whisper.PROMPTS[language] = prompt
            t0 = time.process_time()
            out = [recognizer.transcribe_sync(a, language).text for a in audios]
            results[name] = (error_rate(texts, out, language), bootstrap(texts, out, language), time.process_time() - t0)
        asr_whisper.PROMPTS.pop(language, None)
        g, _, gcpu = results["greedy"]
        for name, (rate, (lo, hi), cpu) in results.items():
            log(f"{language}  base {name:16} WER {rate:5.1%} [{lo:.1%}, {hi:.1%}]  relative to greedy {1 - rate / g:+4.0%}  "
                f"CPU ×{cpu / gcpu:.2f}")
        caught = sum(recognizer.transcribe_sync(a, "en").confidence < threshold for a in audios)
        log(f"{language}  tiny.en confidence below {threshold}: {caught}/{len(audios)} clips caught for the language check")
    recognizer.multilingual_beam_size = configured


async def latency(engines: Engines, clips: int, log) -> None:
    """The check costs English nothing unless tiny.en is unsure: p50 first audio side by side."""
    async with PolyglotServer() as server:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(_env_file=None, data_dir=Path(tmp) / "var", llm_provider="openai",
                                llm_model=MODELS["openai"], openai_base_url=server.base_url, openai_api_key=KEYS["openai"])
            own = Engines(recognizer=engines.recognizer, chat_model=build_chat_model(settings),
                          synthesizers=engines.synthesizers, converters={}, renderer=None,
                          text_languages=engines.text_languages)
            services = await build_services(settings, engines=own)
            pipeline = services.pipeline
            checked = pipeline.config
            unchecked = replace(checked, recheck_confidence=0.0)
            times: dict[str, list[float]] = {"with the check": [], "without": []}
            try:
                for i, (path, _, _) in enumerate(picked("en", clips, offset=1) * 2):
                    for name, config in (("with the check", checked), ("without", unchecked))[:: 1 if i % 2 else -1]:
                        pipeline.config = config
                        user = f"lat:{name}:{i}"
                        frames = [f async for f in Dialogue(services).reply(Incoming(user, user, audio=path.read_bytes()))]
                        times[name].append(frames[-1].timing("first_audio"))
            finally:
                pipeline.config = checked
                await services.close()
    a, b = statistics.median(times["with the check"]), statistics.median(times["without"])
    log(f"first audio p50 {a:.2f} s with the check, {b:.2f} s without (×{a / b:.2f}); "
        f"p95 {pct(times['with the check'], 0.95):.2f} / {pct(times['without'], 0.95):.2f} s; {len(times['without'])} replies each")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "language.txt")
    parser.add_argument("--part", choices=["all", "answers", "asr", "latency"], default="all")
    args = parser.parse_args()
    lines: list[str] = []

    def log(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with tempfile.TemporaryDirectory() as tmp:
        engines = build_engines(Settings(_env_file=None, data_dir=Path(tmp) / "var"))
        log(f"bench/language.py  {time.strftime('%Y-%m-%d %H:%M')}  questions={args.questions} clips={args.clips}")
        log("")
        if args.part in ("all", "answers"):
            log("1. Answers per language (loopback model that writes every language)")
            await answers(engines, args.questions, log)
        if args.part in ("all", "asr"):
            log("")
            log("2. Recognition (temperature 0)")
            recognition(engines, args.clips, log)
        if args.part in ("all", "latency"):
            log("")
            log("3. English voice in → first audio out, with and without the language check (interleaved)")
            await latency(engines, args.questions // 2, log)
        await engines.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
