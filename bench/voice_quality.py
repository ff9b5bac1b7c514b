"""Lite voice quality on the fixed en split (RVC/data/en_split.json), against the speaker's own recordings.

    python bench/voice_quality.py prepare            # features of the train split → .lite-data/en_train.npz
    python -m RVC.lite_train --data .lite-data/en_train.npz --out .lite-data/en.lite.pt   # on a GPU machine
    python bench/voice_quality.py evaluate --artifact .lite-data/en.lite.pt [--write]

For each held-apart sentence of the split (20) the base TTS speaks it several times (3 renderings: Piper
samples its timing afresh each call) and the voice converts each rendering. Three things are scored on the
same sentences: the speaker's own recordings of them, the unconverted TTS, the converted TTS.
- Similarity: resemblyzer cosine to the centroid of the split's *reference* clips; none of the scored
  recordings is in that centroid.
- WER with both bundled recognizers (tiny.en and multilingual base), through the project's one normaliser
  (adapters/wer.py); a sentence where nothing is heard counts every word as an error.
- 95 % intervals by bootstrap over the sentences, printed for every ratio and difference.
Results go to bench/results/ only with --write (voice_quality.txt, or the name given).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.speech import speech_clip, speech_clips
SPLIT = ROOT / "RVC" / "data" / "en_split.json"
DATA = ROOT / ".lite-data"
RESULTS = ROOT / "bench" / "results" / "voice_quality.txt"

Converter = Callable[[np.ndarray, int], tuple[np.ndarray, int]]
KINDS = ("own", "unconverted", "converted")


def _clips(names: list[str]) -> list[np.ndarray]:
    from adapters.media import decode_audio

    return [decode_audio(speech_clip("en", n).read_bytes()).samples for n in names]


def _texts() -> dict[str, str]:
    return {path.stem: text for path, _, text in speech_clips("en")}


def prepare(args: argparse.Namespace) -> None:
    from RVC.features import bundled_content
    from RVC.lite_data import build_dataset

    split = json.loads(SPLIT.read_text())
    t0 = time.perf_counter()
    data = build_dataset(_clips(split["train"]), bundled_content(ROOT / "var" / "cache"), dims=args.dims)
    DATA.mkdir(exist_ok=True)
    np.savez_compressed(DATA / "en_train.npz", **data)
    print(f"prepared {len(data['f0']) / 100 / 60:.1f} min in {time.perf_counter() - t0:.0f} s → {DATA / 'en_train.npz'}")


@dataclass
class Measured:
    """Per sentence and kind: similarity of each rendering, and (errors, words) per recognizer summed over renderings."""

    sentences: int
    similarity: dict[str, list[list[float]]] = field(default_factory=dict)
    errors: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # recognizer → kind → [sentences, 2]
    audio_seconds: float = 0.0
    convert_seconds: float = 0.0

    def wer(self, recognizer: str, kind: str, pick: np.ndarray | None = None) -> float:
        e = self.errors[recognizer][kind] if pick is None else self.errors[recognizer][kind][pick]
        return float(e[:, 0].sum() / max(1, e[:, 1].sum()))

    def mean_similarity(self, kind: str, pick: np.ndarray | None = None) -> float:
        rows = self.similarity[kind] if pick is None else [self.similarity[kind][i] for i in pick]
        return float(np.mean([x for row in rows for x in row]))


def _similarity(samples: np.ndarray, rate: int, centre: np.ndarray) -> float:
    from RVC.speaker import embed

    x = np.nan_to_num(np.asarray(samples, np.float32))
    if x.size < rate // 10 or float(np.sqrt(np.mean(x ** 2))) < 1e-4:
        return 0.0  # nothing to embed: as unlike the speaker as it gets
    return float(np.dot(embed(x, rate), centre))


def _heard(asr, samples: np.ndarray, rate: int) -> str:
    from core.errors import NoSpeech
    from core.types import Audio

    x = np.nan_to_num(np.asarray(samples, np.float32))
    if x.size < rate // 10:
        return ""
    try:
        return asr.transcribe_sync(Audio(x, rate), "en").text
    except NoSpeech:
        return ""  # the recognizer heard no speech: every word of the sentence is an error


def measure(convert: Converter, texts: Sequence[str], own: Sequence[np.ndarray], centroid_clips: Sequence[np.ndarray], *,
            tts, recognizers: dict[str, object], renders: int = 3, save_dir: Path | None = None) -> Measured:
    """Speak each text `renders` times, convert it, and score own / unconverted / converted per sentence."""
    from adapters.wer import sentence_errors
    from RVC.features import RATE, to_rate
    from RVC.speaker import centroid, embed

    centre = centroid([embed(c) for c in centroid_clips])
    m = Measured(len(texts), {k: [] for k in KINDS}, {r: {k: np.zeros((len(texts), 2)) for k in KINDS} for r in recognizers})
    for i, (text, recording) in enumerate(zip(texts, own, strict=True)):
        m.similarity["own"].append([_similarity(recording, RATE, centre)])
        for name, asr in recognizers.items():
            m.errors[name]["own"][i] += sentence_errors(text, _heard(asr, recording, RATE))
        m.similarity["unconverted"].append([])
        m.similarity["converted"].append([])
        for r in range(renders):
            spoken = tts.synthesize_sync(text)
            plain = to_rate(spoken.samples, spoken.sample_rate)
            t0 = time.perf_counter()
            out, rate = convert(spoken.samples, spoken.sample_rate)
            m.convert_seconds += time.perf_counter() - t0
            m.audio_seconds += spoken.seconds
            for kind, x, x_rate in (("unconverted", plain, RATE), ("converted", out, rate)):
                m.similarity[kind][i].append(_similarity(x, x_rate, centre))
                for name, asr in recognizers.items():
                    m.errors[name][kind][i] += sentence_errors(text, _heard(asr, x, x_rate))
            if save_dir is not None:
                from adapters.media import encode_wav
                from core.types import Audio

                save_dir.mkdir(parents=True, exist_ok=True)
                (save_dir / f"{i:02d}-{r}.wav").write_bytes(encode_wav(Audio(np.asarray(out, np.float32), rate)))
    return m


def bootstrap(m: Measured, statistic: Callable[[np.ndarray], float], samples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of `statistic` over sentences drawn with replacement."""
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, m.sentences, m.sentences)) for _ in range(samples)])
    # no interpolation: a ratio whose denominator came out 0 in some resamples is infinite there, and says so
    lo, hi = np.quantile(values, [0.025, 0.975], method="inverted_cdf")
    return float(lo), float(hi)


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf")


def report(m: Measured, renders: int, boot: int = 2000) -> list[str]:
    def ci(stat: Callable[[np.ndarray], float], fmt: str) -> str:
        lo, hi = bootstrap(m, stat, boot)
        return f"[{fmt.format(lo)}, {fmt.format(hi)}]"

    lines = [f"{'':30}{'similarity':>12}  95% CI"]
    for kind, label in (("own", "speaker's own recordings"), ("unconverted", "unconverted TTS"), ("converted", "converted")):
        lines.append(f"{label:30}{m.mean_similarity(kind):>12.3f}  "
                     + ci(lambda p, k=kind: m.mean_similarity(k, p), "{:.3f}"))
    lines.append(f"similarity gain, converted − unconverted: {m.mean_similarity('converted') - m.mean_similarity('unconverted'):+.3f} "
                 + ci(lambda p: m.mean_similarity("converted", p) - m.mean_similarity("unconverted", p), "{:+.3f}"))
    for name in m.errors:
        lines.append("")
        lines.append(f"WER, recognizer {name} ({m.sentences} sentences; TTS rows over {renders} renderings each)")
        for kind, label in (("own", "speaker's own recordings"), ("unconverted", "unconverted TTS"), ("converted", "converted")):
            lines.append(f"  {label:28}{m.wer(name, kind):>8.1%}  " + ci(lambda p, k=kind, n=name: m.wer(n, k, p), "{:.1%}"))
        for a, b in (("converted", "own"), ("converted", "unconverted"), ("unconverted", "own")):
            w_a, w_b = m.wer(name, a), m.wer(name, b)
            diff = ci(lambda p, n=name, a=a, b=b: 100 * (m.wer(n, a, p) - m.wer(n, b, p)), "{:+.1f}")
            ratio = ci(lambda p, n=name, a=a, b=b: _ratio(m.wer(n, a, p), m.wer(n, b, p)), "{:.2f}×")
            shown = f"{_ratio(w_a, w_b):.2f}× {ratio}" if w_b > 0 else f"n/a ({b} WER is 0)"
            lines.append(f"  {a} vs {b}: {100 * (w_a - w_b):+.1f} points {diff};  ratio {shown}")
    return lines


def evaluate(args: argparse.Namespace) -> None:
    import torch
    from adapters.asr_whisper import WhisperRecognizer
    from adapters.tts_piper import PiperSynthesizer, bundled_voice
    from adapters.whisper_models import english_tiny_dir, multilingual_base_dir
    from RVC.engines.lite import LiteEngine
    from RVC.features import bundled_content

    torch.set_num_threads(args.threads)
    split = json.loads(SPLIT.read_text())
    texts = _texts()
    names = split["eval"][: args.sentences]
    cache = ROOT / "var" / "cache"
    recognizers = {"tiny.en": WhisperRecognizer(english_tiny_dir(), None, threads=args.threads),
                   "base (multilingual)": WhisperRecognizer(None, multilingual_base_dir(cache), threads=args.threads)}
    tts = PiperSynthesizer(*bundled_voice(), threads=args.threads)
    engine = LiteEngine(bundled_content(cache, args.threads), args.threads)
    params = {"artifact": str(args.artifact)}
    engine.convert(tts.synthesize_sync("Warm up.").samples, 22050, params)  # loads and exports the voice before timing
    m = measure(lambda x, rate: engine.convert(x, rate, params), [texts[n] for n in names], _clips(names),
                _clips(split["reference"]), tts=tts, recognizers=recognizers, renders=args.renders,
                save_dir=Path(args.save_dir) if args.save_dir else None)
    lines = [f"Lite voice quality — en split (RVC/data/en_split.json): {len(names)} held-apart sentences × {args.renders} "
             f"renderings by the base TTS (Piper); artifact {Path(args.artifact).name}",
             f"similarity centroid: the {len(split['reference'])} 'reference' clips (none of the scored recordings)", ""]
    lines += report(m, args.renders, args.bootstrap)
    lines += ["", f"CPU conversion, {args.threads} threads: {m.audio_seconds:.1f} s of speech in {m.convert_seconds:.1f} s"
                  f" = {m.audio_seconds / max(m.convert_seconds, 1e-9):.1f}× faster than real time"]
    if args.train_log:
        lines.append(f"training: {Path(args.train_log).read_text().strip().splitlines()[-1]}")
    if args.note:
        lines.append(f"model: {args.note}")
    text = "\n".join(lines)
    print(text)
    if args.write:
        out = RESULTS.parent / Path(args.write).name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        print(f"written to {out.relative_to(ROOT)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--dims", type=int, default=128)
    e = sub.add_parser("evaluate")
    e.add_argument("--artifact", required=True)
    e.add_argument("--sentences", type=int, default=20, help="held-apart sentences scored (the split has 20)")
    e.add_argument("--renders", type=int, default=3, help="base-TTS renderings of each sentence")
    e.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for the intervals")
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--train-log", default="")
    e.add_argument("--note", default="", help="how the artifact was made, for the results file")
    e.add_argument("--save-dir", default="")
    e.add_argument("--write", nargs="?", const=RESULTS.name, default="", metavar="NAME",
                   help=f"write the results to bench/results/NAME (default {RESULTS.name})")
    args = ap.parse_args()
    {"prepare": prepare, "evaluate": evaluate}[args.cmd](args)


if __name__ == "__main__":
    main()
