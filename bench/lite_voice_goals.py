"""Lite voices against the goals of issue 17, side by side in one run: similarity and WER vs the speaker's own recordings.

    python bench/lite_voice_goals.py demo=assets/demo/voice.lite.pt cpu=cpu.lite.pt [--renders 3] [--write FILE]

Sentences: the 40 en clips the training never sees (RVC/data/en_split.json: its 20 'eval' and 20 'reference'
clips); the bundled Piper voice speaks each `--renders` times (Piper samples its durations and noise, so every
rendering differs) and every artifact converts the same renderings. Similarity: resemblyzer cosine of each
utterance to the centroid of the reference clips, leaving out the clip of the sentence being scored. WER: both
bundled recognizers (tiny.en and the multilingual base, each decoding as the product configures it), scored with the project's one normaliser
(adapters/wer.py), speech a recognizer finds nothing in counting as every word wrong. The speaker's own
recordings of the same sentences are scored the same way; each voice's gap to them comes with a paired
bootstrap 95 % interval over sentences, and the sentences that lose the most words are listed with what was heard.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.speech import speech_clip, speech_clips
SPLIT = ROOT / "RVC" / "data" / "en_split.json"
OWN = "speaker's own recordings"
WORST = 5  # sentences listed per voice: whether a gap is a few lost sentences or words lost everywhere
# Transcripts that do not say what the speaker says, corrected for what Piper reads and for what is scored: two
# misspelt sentences (Piper read "Un-indentified", "witheld", "represenatives"), a "*" she reads "star" (Piper read
# "asterisk", and the normaliser drops the symbol: a word every reading was charged for), and a "but" she says that
# the transcript lacks (both recognizers hear it in her recording).
TRANSCRIPT_FIXES = {
    "unidentified-no-callback": "Unidentified or withheld and therefore cannot be called back.",
    "queue-periodic-announce": "All of our representatives are currently busy. Please stay on the line and your call "
                               "will be answered by the next available representative.",
    "demo-enterkeywords": "Please enter one or more keywords separated by star and then press the pound key.",
    "pbx-invalid": "I am sorry, but that's not a valid extension. Please try again.",
}


def paired_gap(e: np.ndarray, w: np.ndarray, oe: np.ndarray, ow: np.ndarray, rng: np.random.Generator,
               n: int = 2000) -> tuple[float, float, float]:
    """A voice's corpus WER minus her own on the same sentences, with a 95 % interval resampled over sentences."""
    idx = rng.integers(0, len(w), (n, len(w)))
    diff = e[idx].sum(1) / w[idx].sum(1) - oe[idx].sum(1) / ow[idx].sum(1)
    return e.sum() / w.sum() - oe.sum() / ow.sum(), float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5))


def load_sentences(limit: int = 0):
    """The held-out sentences: their names, corrected texts, a clip loader and each one's leave-one-out centroid."""
    from adapters.media import decode_audio
    from RVC.speaker import centroid as make_centroid
    from RVC.speaker import embed

    split = json.loads(SPLIT.read_text())
    texts = {path.stem: text for path, _, text in speech_clips("en")}
    texts.update(TRANSCRIPT_FIXES)
    clip = lambda n: decode_audio(speech_clip("en", n).read_bytes()).samples
    ref_embeds = {n: embed(clip(n)) for n in split["reference"]}
    names = (split["eval"] + split["reference"])[: limit or None]
    # a reference sentence is scored against the centroid of the other reference clips
    centres = {n: make_centroid([e for m, e in ref_embeds.items() if m != n]) for n in names}
    return names, texts, clip, centres


def recognizers_as_configured(cache: Path, names: tuple[str, ...] = ("tiny.en", "base"), threads: int = 2) -> dict:
    """Both bundled recognizers (or those of `names`), each on its own, decoding with the product's defaults
    (adapters/settings.py), so the beam sizes follow them (the multilingual base's prompt is for French and Spanish only)."""
    from dataclasses import replace

    from adapters.asr_whisper import MULTILINGUAL, Decoding, WhisperRecognizer
    from adapters.settings import Settings
    from adapters.whisper_models import english_tiny_dir, multilingual_base_dir

    fields = Settings.model_fields
    made = {"tiny.en": lambda: WhisperRecognizer(english_tiny_dir(), None, threads=threads,
                                                 english=Decoding(beam_size=fields["asr_beam_size"].default)),
            "base": lambda: WhisperRecognizer(None, lambda: multilingual_base_dir(cache), threads=threads,
                                              multilingual=replace(MULTILINGUAL, beam_size=fields["asr_multilingual_beam_size"].default))}
    return {name: made[name]() for name in names}


def score_speech(samples: np.ndarray, text: str, centre: np.ndarray, recognizers: dict) -> dict:
    """16 kHz speech of `text`: similarity to the speaker's centroid, and each recognizer's (errors, words) and text."""
    from adapters.wer import sentence_errors
    from core.errors import NoSpeech
    from core.types import Audio
    from RVC.features import RATE
    from RVC.speaker import embed

    row = {"sim": float(np.dot(embed(samples), centre)), "heard": {}}
    for name, asr in recognizers.items():
        try:
            heard = asr.transcribe_sync(Audio(samples, RATE), "en").text
        except NoSpeech:
            heard = ""  # nothing heard: every word wrong
        row[name] = sentence_errors(text, heard)
        row["heard"][name] = heard
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("voices", nargs="+", help="label=path of a lite artifact")
    ap.add_argument("--renders", type=int, default=3)
    ap.add_argument("--sentences", type=int, default=0, help="score only the first N sentences (a quick look)")
    ap.add_argument("--write", default="", help="also write the table to this file")
    args = ap.parse_args()

    import torch

    from adapters.tts_piper import PiperSynthesizer, bundled_voice
    from RVC.engines.lite import LiteEngine
    from RVC.features import bundled_content, to_rate

    torch.set_num_threads(2)
    cache = ROOT / "var" / "cache"
    names, texts, clip, centres = load_sentences(args.sentences)
    recognizers = recognizers_as_configured(cache)

    def score(samples: np.ndarray, name: str) -> dict:
        return score_speech(samples, texts[name], centres[name], recognizers)

    voices = [v.split("=", 1) for v in args.voices]
    engine = LiteEngine(bundled_content(cache))
    tts = PiperSynthesizer(*bundled_voice(), threads=2)
    rows: dict[str, list[list[dict]]] = {OWN: [], "unconverted Piper": []}
    rows.update({label: [] for label, _ in voices})
    seconds = {label: [0.0, 0.0] for label, _ in voices}
    t0 = time.perf_counter()
    for name in names:
        rows[OWN].append([score(clip(name), name)])
        renders = [tts.synthesize_sync(texts[name]) for _ in range(args.renders)]
        rows["unconverted Piper"].append([score(to_rate(r.samples, r.sample_rate), name) for r in renders])
        for label, path in voices:
            got = []
            for r in renders:
                t = time.perf_counter()
                out, _rate = engine.convert(r.samples, r.sample_rate, {"artifact": path})
                seconds[label][0] += time.perf_counter() - t
                seconds[label][1] += r.seconds
                got.append(score(out, name))
            rows[label].append(got)
        print(f"  {name} ({time.perf_counter() - t0:.0f} s)", flush=True)

    rng = np.random.default_rng(0)

    def totals(label: str, asr: str) -> tuple[np.ndarray, np.ndarray]:
        # per sentence: errors and words summed over its renderings
        e = np.array([sum(r[asr][0] for r in sent) for sent in rows[label]], float)
        w = np.array([sum(r[asr][1] for r in sent) for sent in rows[label]], float)
        return e, w

    words = int(sum(totals(OWN, "tiny.en")[1]))
    lines = [f"Lite voices vs the speaker's own recordings: {len(names)} en sentences the training never saw ({words} words)"
             f" × {args.renders} Piper renderings ({len(TRANSCRIPT_FIXES)} transcripts corrected to what she says); "
             "similarity to the centroid of the reference clips (the scored sentence's own clip left out)",
             f"{'':28}{'similarity':>11}{'WER tiny.en':>13}{'WER base':>10}   gap to own recordings, points (paired 95 % CI)"]
    own = {asr: totals(OWN, asr) for asr in recognizers}
    for label in rows:
        sims = [r["sim"] for sent in rows[label] for r in sent]
        wers, gaps = [], []
        for asr in recognizers:
            e, w = totals(label, asr)
            wers.append(e.sum() / w.sum())
            if label != OWN:
                gap, lo, hi = paired_gap(e, w, *own[asr], rng)
                gaps.append(f"{asr} {100 * gap:+.1f} ({100 * lo:+.1f}..{100 * hi:+.1f})")
        lines.append(f"{label:28}{np.mean(sims):>11.3f}{100 * wers[0]:>12.1f}%{100 * wers[1]:>9.1f}%   " + "; ".join(gaps))
    lines.append("")
    lines.append(f"where the words are lost: the {WORST} sentences with the most errors (both recognizers, all renderings), "
                 "and each voice's gap without them")
    for label in rows:
        per = sum(totals(label, asr)[0] for asr in recognizers) - (0 if label == OWN else
                                                                     args.renders * sum(own[asr][0] for asr in recognizers))
        worst = [int(i) for i in np.argsort(-per, kind="stable")[:WORST] if per[i] > 0]
        keep = np.setdiff1d(np.arange(len(names)), worst)
        rest = []
        for asr in recognizers:
            e, w = totals(label, asr)
            oe, ow = own[asr]
            rest.append(f"{asr} {100 * (e[keep].sum() / w[keep].sum() - oe[keep].sum() / ow[keep].sum()):+.1f}")
        lines.append(f"  {label}: gap without them " + ", ".join(rest) if label != OWN else f"  {label}:")
        for i in worst:
            heard = rows[label][i][0]["heard"]
            errs = "/".join(str(int(totals(label, asr)[0][i])) for asr in recognizers)
            lines.append(f"    {names[i]:<30} {errs:>7} errors  said: {texts[names[i]]!r}  heard (tiny.en, first): {heard['tiny.en']!r}")
    for label, (spent, audio) in seconds.items():
        lines.append(f"{label}: converted {audio:.1f} s of speech in {spent:.1f} s on {torch.get_num_threads()} CPU threads")
    text = "\n".join(lines)
    print(text)
    if args.write:
        Path(args.write).write_text(text + "\n")


if __name__ == "__main__":
    main()
