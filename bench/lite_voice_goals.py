"""Lite voices against the goals of issue 17, side by side in one run: similarity and WER vs the speaker's own recordings.

    python bench/lite_voice_goals.py demo=assets/demo/voice.lite.pt cpu=cpu.lite.pt [--renders 2] [--write FILE]

For the 20 held-apart sentences of the en split (RVC/data/en_split.json), the bundled Piper voice speaks each
`--renders` times; every artifact converts the same renderings. Similarity: resemblyzer cosine of each utterance
to the centroid of the 20 *reference* clips (never the clips scored). WER: both bundled recognizers (tiny.en and
the multilingual base), text normalised on both sides alike (Whisper's English normaliser, digits spelled by
num2words first, jiwer's alignment), speech a recognizer finds nothing in counting as every word wrong. The
speaker's own recordings of the same sentences are scored the same way; each voice's gap to them comes with a
bootstrap 95 % interval over sentences.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SPEECH = ROOT.parent / "shared" / "data" / "speech" / "en"
SPLIT = ROOT / "RVC" / "data" / "en_split.json"


def normalise(text: str) -> str:
    from num2words import num2words
    from whisper_normalizer.english import EnglishTextNormalizer

    text = re.sub(r"\d+", lambda m: " " + num2words(int(m.group(0))) + " ", text)
    return EnglishTextNormalizer()(text)


def errors(ref: str, hyp: str) -> tuple[int, int]:
    import jiwer

    r, h = normalise(ref), normalise(hyp)
    words = len(r.split())
    if not h.strip():
        return words, words
    out = jiwer.process_words(r, h)
    return out.substitutions + out.deletions + out.insertions, words


def bootstrap(per_sentence: np.ndarray, words: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float]:
    """95 % interval of a corpus rate (sum of errors / sum of words) resampled over sentences."""
    idx = rng.integers(0, len(words), (n, len(words)))
    rates = per_sentence[idx].sum(axis=1) / words[idx].sum(axis=1)
    return float(np.percentile(rates, 2.5)), float(np.percentile(rates, 97.5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("voices", nargs="+", help="label=path of a lite artifact")
    ap.add_argument("--renders", type=int, default=2)
    ap.add_argument("--write", default="", help="also write the table to this file")
    args = ap.parse_args()

    import torch

    from adapters.asr_whisper import WhisperRecognizer
    from adapters.tts_piper import PiperSynthesizer, bundled_voice
    from adapters.whisper_models import english_tiny_dir, multilingual_base_dir
    from adapters.media import decode_audio
    from core.errors import NoSpeech
    from core.types import Audio
    from RVC.engines.lite import LiteEngine
    from RVC.features import RATE, bundled_content, to_rate
    from RVC.speaker import centroid as make_centroid
    from RVC.speaker import embed

    torch.set_num_threads(2)
    cache = ROOT / "var" / "cache"
    split = json.loads(SPLIT.read_text())
    with open(SPEECH / "transcripts.tsv", newline="", encoding="utf-8") as f:
        texts = {r["clip"]: r["text"] for r in csv.DictReader(f, delimiter="\t")}
    clip = lambda n: decode_audio((SPEECH / f"{n}.ogg").read_bytes()).samples  # noqa: E731
    centre = make_centroid([embed(clip(n)) for n in split["reference"]])
    recognizers = {"tiny.en": WhisperRecognizer(english_tiny_dir(), None, threads=2),
                   "base": WhisperRecognizer(None, lambda: multilingual_base_dir(cache), threads=2)}

    def score(samples: np.ndarray, text: str) -> dict:
        row = {"sim": float(np.dot(embed(samples), centre))}
        for name, asr in recognizers.items():
            try:
                heard = asr.transcribe_sync(Audio(samples, RATE), "en").text
            except NoSpeech:
                heard = ""
            row[name] = errors(text, heard)
        return row

    voices = [v.split("=", 1) for v in args.voices]
    engine = LiteEngine(bundled_content(cache))
    tts = PiperSynthesizer(*bundled_voice(), threads=2)
    rows: dict[str, list[list[dict]]] = {"speaker's own recordings": [], "unconverted Piper": []}
    rows.update({label: [] for label, _ in voices})
    seconds = {label: [0.0, 0.0] for label, _ in voices}
    t0 = time.perf_counter()
    for name in split["eval"]:
        text = texts[name]
        rows["speaker's own recordings"].append([score(clip(name), text)])
        renders = [tts.synthesize_sync(text) for _ in range(args.renders)]
        rows["unconverted Piper"].append([score(to_rate(r.samples, r.sample_rate), text) for r in renders])
        for label, path in voices:
            got = []
            for r in renders:
                t = time.perf_counter()
                out, rate = engine.convert(r.samples, r.sample_rate, {"artifact": path})
                seconds[label][0] += time.perf_counter() - t
                seconds[label][1] += r.seconds
                got.append(score(out, text))
            rows[label].append(got)
        print(f"  {name} ({time.perf_counter() - t0:.0f} s)", flush=True)

    rng = np.random.default_rng(0)

    def totals(label: str, asr: str) -> tuple[np.ndarray, np.ndarray]:
        # per sentence: errors and words summed over its renderings
        e = np.array([sum(r[asr][0] for r in sent) for sent in rows[label]], float)
        w = np.array([sum(r[asr][1] for r in sent) for sent in rows[label]], float)
        return e, w

    lines = [f"Lite voices vs the speaker's own recordings: en split, {len(split['eval'])} held-apart sentences"
             f" × {args.renders} Piper renderings; similarity to the centroid of the {len(split['reference'])} reference clips",
             f"{'':28}{'similarity':>11}{'WER tiny.en':>13}{'WER base':>10}   gap to own recordings, points (95 % CI)"]
    own = {asr: totals("speaker's own recordings", asr) for asr in recognizers}
    for label in rows:
        sims = [r["sim"] for sent in rows[label] for r in sent]
        wers, gaps = [], []
        for asr in recognizers:
            e, w = totals(label, asr)
            wers.append(e.sum() / w.sum())
            if label != "speaker's own recordings":
                # paired over sentences: the same sentences resampled for the voice and for the recordings
                oe, ow = own[asr]
                idx = rng.integers(0, len(w), (2000, len(w)))
                diff = e[idx].sum(1) / w[idx].sum(1) - oe[idx].sum(1) / ow[idx].sum(1)
                gaps.append(f"{asr} {100 * (wers[-1] - oe.sum() / ow.sum()):+.1f} "
                            f"({100 * np.percentile(diff, 2.5):+.1f}..{100 * np.percentile(diff, 97.5):+.1f})")
        lines.append(f"{label:28}{np.mean(sims):>11.3f}{100 * wers[0]:>12.1f}%{100 * wers[1]:>9.1f}%   " + "; ".join(gaps))
    for label, (spent, audio) in seconds.items():
        lines.append(f"{label}: converted {audio:.1f} s of speech in {spent:.1f} s on {torch.get_num_threads()} CPU threads")
    text = "\n".join(lines)
    print(text)
    if args.write:
        Path(args.write).write_text(text + "\n")


if __name__ == "__main__":
    main()
