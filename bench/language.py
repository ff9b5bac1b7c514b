"""Answers in the user's language, measured per language, and the recognizer settings behind them.

1. Answers: en/fr/es questions are real voice clips of the shared speech set, zh questions are typed. Each goes
   through the real dialogue (DOPPEL_LANGUAGE=en, persona `auto`) with a loopback OpenAI-compatible model that
   answers in the language its system prompt asks for (tests/fakes/polyglot_llm.py, 20 answers a language).
   Run for the deployment the bench represents (DOPPEL_LANGUAGES=en,fr,es,zh), with everything: the answer's
   language (by the pipeline, and by Lingua on the answer text), the language the model was asked for, and the
   spoken answer read back by the bundled Whisper (language detected among DOPPEL_LANGUAGES, then transcribed):
   WER for en/fr/es, CER for zh. Then the answer language alone for the wide default list (8 languages).
2. Recognition: tiny.en on the shared en clips, and Whisper base on every shared fr/es clip with speech in its
   reference (known misspellings in the references corrected), under each setting side by side: error rate with a bootstrap 95 % interval, per reference length
   (1-2, 3-6, 7+ words, so single words do not hide what a setting does on sentences), the improvement over each
   greedy baseline with a paired bootstrap interval, and CPU time. The references were typed without many of
   their accents ("numero", "codigo"), so words are compared with accents folded (adapters/wer.py, accents=False);
   the figure with accents kept is printed beside it.
3. English voice in -> first audio out, with and without the language check, interleaved.

    .venv/bin/python bench/language.py [--part all|answers|asr|latency] [--questions 20] [--clips 0] [--write]

Every error rate goes through the project's one normaliser, adapters/wer.py.
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
from dataclasses import replace
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.asr_whisper import Decoding  # noqa: E402
from adapters.media import decode_audio  # noqa: E402
from adapters.wer import normalize, sentence_errors  # noqa: E402
from bot.common.dialogue import Dialogue, Incoming  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.wiring import Engines, build_chat_model, build_engines, build_services  # noqa: E402
from core import audio as audio_ops  # noqa: E402
from core.errors import DoppelError  # noqa: E402
from core.languages import choose_language, english_name  # noqa: E402
from core.pipeline import PipelineConfig  # noqa: E402
from core.types import AudioFrame, ReplyDone, TranscriptFrame  # noqa: E402
from tests.conftest import speech_clips  # noqa: E402
from tests.fakes.polyglot_llm import PolyglotServer  # noqa: E402
from tests.test_llm_providers import KEYS, MODELS  # noqa: E402

DEPLOYMENT = ("en", "fr", "es", "zh")  # the languages this bench asks in
WIDE = tuple(Settings.model_fields["languages"].default_factory())  # the default DOPPEL_LANGUAGES

ZH_QUESTIONS = [
    "你早上一般吃什么？", "图书馆几点开门？", "今天下午会下雨吗？", "你最喜欢哪个季节？", "去火车站要多久？",
    "晚饭以后做什么好？", "我们在哪里见面？", "你睡觉前做什么？", "博物馆有什么新展览？", "面条要煮多久？",
    "这个周末你想做什么？", "你的朋友去哪里工作？", "学中文什么最难？", "你晚上喜欢做什么？", "哪家饭店好吃？",
    "明天要上班吗？", "你怎么去学校？", "这里冬天冷吗？", "我现在应该做什么？", "你喜欢和我聊天吗？",
]


# ---- scoring: per-sentence edits from adapters/wer.py, pooled and resampled here ----


def errors(refs: list[str], hyps: list[str], language: str, accents: bool = True) -> list[tuple[int, int]]:
    return [sentence_errors(r, h, language, accents) for r, h in zip(refs, hyps, strict=True)]


def rate(errs: list[tuple[int, int]]) -> float:
    return sum(e for e, _ in errs) / max(1, sum(n for _, n in errs))


def bootstrap(errs: list[tuple[int, int]], runs: int = 2000) -> tuple[float, float]:
    """95 % interval of the pooled error rate, resampling sentences."""
    rng = random.Random(0)
    n = len(errs)
    rates = sorted(rate([errs[rng.randrange(n)] for _ in range(n)]) for _ in range(runs))
    return rates[int(0.025 * runs)], rates[int(0.975 * runs) - 1]


def paired_gain(base: list[tuple[int, int]], new: list[tuple[int, int]], runs: int = 2000) -> tuple[float, float, float]:
    """1 - rate(new)/rate(base) on the same sentences, with a 95 % interval resampling sentences in pairs."""
    rng = random.Random(1)
    n = len(base)
    gains = []
    for _ in range(runs):
        pick = [rng.randrange(n) for _ in range(n)]
        b = rate([base[i] for i in pick])
        gains.append(1 - rate([new[i] for i in pick]) / b if b else 0.0)
    gains.sort()
    b = rate(base)
    return (1 - rate(new) / b if b else 0.0), gains[int(0.025 * runs)], gains[int(0.975 * runs) - 1]


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


def picked(language: str, n: int, offset: int = 0, min_seconds: float = 2.0):
    """`n` clips spread evenly over the set (all of them for n = 0)."""
    clips = speech_clips(language, min_seconds=min_seconds)
    if n <= 0:
        return clips
    step = max(1, len(clips) // n)
    return clips[offset::step][:n]


# ---- 1. answers ----


async def answers(engines: Engines, questions: int, allowed: tuple[str, ...], log, read_back: bool = True) -> None:
    async with PolyglotServer() as server:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(_env_file=None, data_dir=Path(tmp) / "var", llm_provider="openai", languages=list(allowed),
                                llm_model=MODELS["openai"], openai_base_url=server.base_url, openai_api_key=KEYS["openai"])
            own = Engines(recognizer=engines.recognizer, chat_model=build_chat_model(settings),
                          synthesizers=engines.synthesizers, converters={}, renderer=None,
                          text_languages=engines.text_languages)
            services = await build_services(settings, engines=own)
            dialogue = Dialogue(services)
            log(f"DOPPEL_LANGUAGE={settings.language}  DOPPEL_LANGUAGES={','.join(allowed)}  persona=default (auto)")
            if read_back:
                log("lang  heard  answer(pipeline)  answer(Lingua)  asked  read-back lang   error rate [95% CI]        first audio p50")
            else:
                log("lang  heard  answer(pipeline)  asked   wrong answers")
            try:
                for language in DEPLOYMENT:
                    if language == "zh":
                        inputs = [dict(text=q) for q in ZH_QUESTIONS[:questions]]
                    else:
                        inputs = [dict(audio=p.read_bytes()) for p, _, _ in picked(language, questions)]
                    heard = pipeline_ok = text_ok = asked_ok = back_ok = 0
                    refs, hyps, first_audio, wrong = [], [], [], []
                    for i, given in enumerate(inputs):
                        user = f"bench:{language}:{i}"  # a new chat each time: no last language to lean on
                        asked_before = len(server.asked)
                        try:
                            frames = [f async for f in dialogue.reply(Incoming(user, user, **given))]
                        except DoppelError as refused:  # e.g. heard as a language nobody here speaks
                            wrong.append(f"#{i} refused: {refused}"[:90])
                            continue
                        done = frames[-1]
                        assert isinstance(done, ReplyDone)
                        transcript = next((f.transcript for f in frames if isinstance(f, TranscriptFrame)), None)
                        heard += (transcript.language if transcript else done.user_language) == language
                        pipeline_ok += done.language == language
                        if done.language != language:
                            wrong.append(f"#{i} as {done.language}")
                        asked_ok += server.asked[asked_before:] == [english_name(language)]
                        if done.timing("first_audio") is not None:
                            first_audio.append(done.timing("first_audio"))
                        if not read_back:
                            continue
                        scores = engines.text_languages.scores(done.text, allowed)
                        text_ok += bool(scores) and max(scores, key=scores.get) == language
                        spoken = audio_ops.join([f.audio for f in frames if isinstance(f, AudioFrame)])
                        back_language = choose_language(engines.recognizer.detect_language_sync(spoken), allowed=allowed)
                        back_ok += back_language == language
                        refs.append(done.text)
                        hyps.append(engines.recognizer.transcribe_sync(spoken, back_language).text)
                    n = len(inputs)
                    lo_ok, _ = wilson(pipeline_ok, n)
                    if not read_back:
                        log(f"{language:4}  {heard:2}/{n}  {pipeline_ok:2}/{n} (≥{lo_ok:.2f})     {asked_ok:2}/{n}   "
                            f"{', '.join(wrong) or '-'}")
                        continue
                    errs = errors(refs, hyps, language)
                    lo, hi = bootstrap(errs)
                    kind = "CER" if language == "zh" else "WER"
                    log(f"{language:4}  {heard:2}/{n}  {pipeline_ok:2}/{n} (≥{lo_ok:.2f})     {text_ok:2}/{n}          "
                        f"{asked_ok:2}/{n}  {back_ok:2}/{n}            {kind} {rate(errs):6.1%} [{lo:.1%}, {hi:.1%}]"
                        f"    {statistics.median(first_audio):.2f} s  ({len(set(refs))} different answers)")
                    worst = max(range(len(errs)), key=lambda k: errs[k][0] / max(1, errs[k][1]))
                    log(f"      worst read-back: {refs[worst]!r} → {hyps[worst]!r}")
                    if wrong:
                        log(f"      not in {language}: {', '.join(wrong)}")
            finally:
                await services.close()


# ---- 2. recognition ----

BUCKETS = (("1-2 words", 1, 2), ("3-6 words", 3, 6), ("7+ words", 7, 10_000))
# misspellings in the shared references that a correct transcript would otherwise be charged for
REFERENCE_FIXES = {
    "fr": {"présentemnet": "présentement", "vérrouiller": "verrouiller", "dévérouiller": "déverrouiller",
           "vérouiller": "verrouiller", "verouillée": "verrouillée", "vérouillée": "verrouillée",
           "déverouillée": "déverrouillée", "dévérouillée": "déverrouillée", "étez": "été", "acceuil": "accueil",
           "conctact": "contact", "rappler": "rappeler", "répétér": "répéter", "appellant": "appelant",
           "abregée": "abrégée", "démontration": "démonstration"},
    "es": {"ingese": "ingrese", "introdusca": "introduzca", "mesaje": "mensaje", "defeto": "defecto",
           "atravez": "a través", "paracambiar": "para cambiar", "trés": "tres"},
}


def fixed_reference(text: str, language: str) -> tuple[str, int]:
    """The reference with its known misspellings corrected, and how many words that changed."""
    count = 0
    for wrong, right in REFERENCE_FIXES.get(language, {}).items():
        text, n = re.subn(rf"\b{wrong}\b", right, text)
        count += n
    return text, count


def plain_greedy(model_dir: Path, threads: int) -> Callable:
    """The bundled base as faster-whisper runs it out of the box, greedy: language guessed among all 99,
    the whole recording (no VAD trim), falling back to sampling at rising temperatures when a decode looks poor."""
    from faster_whisper import WhisperModel

    from adapters.media import ASR_RATE, resample

    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)

    def run(audio, _language):
        segments, _ = model.transcribe(resample(audio, ASR_RATE).samples, beam_size=1)
        return " ".join(s.text.strip() for s in segments)

    return run


def recognition(engines: Engines, clips: int, log, threads: int, cache_dir: Path) -> None:
    from adapters.whisper_models import multilingual_base_dir

    recognizer = engines.recognizer
    threshold = PipelineConfig().recheck_confidence
    en = [c for c in picked("en", clips, min_seconds=0.0) if normalize(c[2])]
    refs = [t for _, _, t in en]
    hyps, rechecked = [], 0
    for path, _, _ in en:
        transcript = recognizer.transcribe_sync(decode_audio(path.read_bytes()), "en")
        hyps.append(transcript.text)
        rechecked += transcript.confidence < threshold
    errs = errors(refs, hyps, "en")
    lo, hi = bootstrap(errs)
    log(f"en  tiny.en greedy (default): WER {rate(errs):.1%} [{lo:.1%}, {hi:.1%}] on {len(refs)} clips; "
        f"{rechecked}/{len(refs)} below confidence {threshold} (sent to the language check)")

    configured = recognizer.multilingual
    plain = plain_greedy(multilingual_base_dir(cache_dir), threads)

    def decoded(decoding: Decoding, detect: bool = False):
        def run(audio, language):
            recognizer.multilingual = decoding
            if detect:  # the language as the product finds it for a user in `auto`: detected among the deployment's
                language = choose_language(recognizer.detect_language_sync(audio), allowed=DEPLOYMENT)
            return recognizer.transcribe_sync(audio, language).text
        return run

    candidates: list[tuple[str, Callable]] = [
        ("A greedy, as it comes (auto of 99, no VAD, T fallback)", plain),
        ("B greedy, language known, T 0, VAD", decoded(Decoding(beam_size=1))),
        (f"default: {configured.describe()}, language known", decoded(configured)),
        (f"default, language detected among {','.join(DEPLOYMENT)}", decoded(configured, detect=True)),
        ("beam 5, no timestamps", decoded(replace(configured, beam_size=5, without_timestamps=True))),
        ("beam 5, prompt in the language", decoded(replace(configured, beam_size=5, prompt=True))),
    ]
    try:
        for language in ("fr", "es"):
            chosen = [c for c in picked(language, clips, min_seconds=0.0) if normalize(c[2], language)]
            audios = [decode_audio(p.read_bytes()) for p, _, _ in chosen]
            texts, fixes = zip(*(fixed_reference(t, language) for _, _, t in chosen))
            words = [len(normalize(t, language).split()) for t in texts]
            log(f"{language}: {len(chosen)} clips ({', '.join(f'{sum(lo <= w <= hi for w in words)} of {name}' for name, lo, hi in BUCKETS)}); "
                f"{sum(fixes)} misspelt reference words corrected")
            log(f"{language}  setting{' ' * 50} WER accents folded [95% CI]   by length: " + " / ".join(n for n, _, _ in BUCKETS)
                + "   accents kept   vs A [95% CI]          vs B [95% CI]          CPU ×B")
            results = {}
            for name, run in candidates:
                t0 = time.process_time()
                out = [run(a, language) for a in audios]
                cpu = time.process_time() - t0
                results[name] = (errors(texts, out, language, accents=False), errors(texts, out, language), cpu)
            (a_errs, _, _), (b_errs, _, b_cpu) = results[candidates[0][0]], results[candidates[1][0]]
            for name, (errs, kept, cpu) in results.items():
                lo, hi = bootstrap(errs)
                by_length = " / ".join(f"{rate([e for e, w in zip(errs, words) if lo_w <= w <= hi_w]):5.1%}"
                                       for _, lo_w, hi_w in BUCKETS)
                ga, ga_lo, ga_hi = paired_gain(a_errs, errs)
                gb, gb_lo, gb_hi = paired_gain(b_errs, errs)
                log(f"{language}  {name:56} {rate(errs):5.1%} [{lo:.1%}, {hi:.1%}]   {by_length}   {rate(kept):5.1%}"
                    f"        {ga:+4.0%} [{ga_lo:+.0%}, {ga_hi:+.0%}]    {gb:+4.0%} [{gb_lo:+.0%}, {gb_hi:+.0%}]    {cpu / b_cpu:.2f}")
            caught = sum(recognizer.transcribe_sync(a, "en").confidence < threshold for a in audios)
            log(f"{language}  tiny.en confidence below {threshold}: {caught}/{len(audios)} clips caught for the language check")
    finally:
        recognizer.multilingual = configured


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
    parser.add_argument("--clips", type=int, default=0, help="fr/es/en clips for part 2, spread over the set (0: all)")
    parser.add_argument("--part", choices=["all", "answers", "asr", "latency"], default="all")
    parser.add_argument("--write", action="store_true", help="write bench/results/language[-PART].txt")
    args = parser.parse_args()
    lines: list[str] = []

    def log(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp) / "var")
        engines = build_engines(settings)
        log(f"bench/language.py --part {args.part}  {time.strftime('%Y-%m-%d %H:%M')}  questions={args.questions} "
            f"clips={args.clips or 'all'}")
        if args.part in ("all", "answers"):
            log("")
            log("1. Answers per language (loopback model that writes every language)")
            await answers(engines, args.questions, DEPLOYMENT, log)
            log("")
            log("1b. The answer's language with the wide default list")
            await answers(engines, args.questions, WIDE, log, read_back=False)
        if args.part in ("all", "asr"):
            log("")
            log("2. Recognition (temperature 0 unless said)")
            recognition(engines, args.clips, log, settings.threads, settings.cache_dir)
        if args.part in ("all", "latency"):
            log("")
            log("3. English voice in → first audio out, with and without the language check (interleaved)")
            await latency(engines, args.questions // 2, log)
        await engines.close()
    if args.write:
        out = ROOT / "bench" / "results" / ("language.txt" if args.part == "all" else f"language-{args.part}.txt")
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
