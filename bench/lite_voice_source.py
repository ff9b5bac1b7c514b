"""Source- and inference-side settings of lite conversion, screened side by side on one voice.

    python bench/lite_voice_source.py assets/demo/voice.lite.pt base= slow=length:1.2 pico=source:pico [--renders 1]
        [--sentences N] [--diffs] [--write FILE]

Each variant is `label=key:value,...` over the defaults (the product's chain: the bundled Piper voice with its own
settings, the engine's padding, pitch moved into the speaker's range). Keys:
  source   piper | pico (Pico's en-US voice, female, as the source the converter hears) | own (her own recording of
           the sentence: what the converter loses with the source's content and pitch as in training)
  length   Piper's length_scale (> 1: slower, more frames per sound)      noise / noise_w   Piper's noise scales
  shift    semitones added after the pitch is moved into the speaker's range
  spread   the pitch contour's spread, as a ratio to the speaker's (1: hers)
  formant  the source played this much higher (frequencies × factor) before its content is taken, frames kept
  pad      frames of silence (20 ms) around the sentence while converting
  speed    Pico's speaking rate (< 1: slower)                              convert   0: the source as it is, unconverted
The sentences, scoring and normaliser are bench/lite_voice_goals.py's; both recognizers decode as the product
configures them. Every variant's gap to the speaker's own recordings comes with a paired 95 % interval over
sentences, and so does its difference to the first variant (what a screen needs: same sentences, one run).
`--diffs` prints, per sentence, what each recognizer heard where a variant lost words.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lite_voice_goals import load_sentences, paired_gap, recognizers_as_configured, score_speech


OWN = object()  # the speaker's own recordings in the tables (a variant may be labelled "own")


@dataclass(frozen=True)
class Variant:
    source: str = "piper"
    length: float | None = None
    noise: float | None = None
    noise_w: float | None = None
    shift: float = 0.0
    spread: float | None = None
    formant: float = 1.0
    pad: int | None = None
    speed: float = 1.0
    convert: int = 1

    @staticmethod
    def parse(spec: str) -> "Variant":
        v = Variant()
        for item in filter(None, spec.split(",")):
            key, value = item.split(":", 1)
            if key not in Variant.__dataclass_fields__:
                raise SystemExit(f"unknown key '{key}' in '{spec}'")
            v = replace(v, **{key: value if key == "source" else (int(value) if key in ("pad", "convert") else float(value))})
        return v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifact")
    ap.add_argument("variants", nargs="+", help="label=key:value,... (an empty spec: the product's chain)")
    ap.add_argument("--renders", type=int, default=1)
    ap.add_argument("--sentences", type=int, default=0)
    ap.add_argument("--diffs", action="store_true")
    ap.add_argument("--write", default="")
    args = ap.parse_args()

    import torch

    from adapters.tts_piper import PiperSynthesizer, bundled_voice
    from adapters.wer import normalize
    from RVC.engines.lite import PAD_FRAMES, LiteEngine
    from RVC.features import RATE, bundled_content, convert_f0, f0_yin, log_f0_stats, to_rate

    torch.set_num_threads(2)
    cache = ROOT / "var" / "cache"
    names, texts, clip, centres = load_sentences(args.sentences)
    recognizers = recognizers_as_configured(cache)
    variants = [(label, Variant.parse(spec)) for label, spec in (v.split("=", 1) for v in args.variants)]
    engine = LiteEngine(bundled_content(cache))
    voice = engine.voice(args.artifact)
    piper = PiperSynthesizer(*bundled_voice(), threads=2)

    def speak(name: str, v: Variant) -> np.ndarray:
        text = texts[name]
        if v.source == "own":
            return clip(name)
        if v.source == "pico":
            import py_nanotts

            pcm = py_nanotts.NanoTTS().speak(text, voice="en-US", speed=v.speed)
            return to_rate(np.frombuffer(pcm, np.int16).astype(np.float32) / 32768.0, 16000)
        from piper import SynthesisConfig

        cfg = SynthesisConfig(length_scale=v.length, noise_scale=v.noise, noise_w_scale=v.noise_w)
        with piper._lock:
            pv = piper._load()
            samples = np.concatenate([c.audio_float_array for c in pv.synthesize(text, syn_config=cfg)])
            rate = pv.config.sample_rate
        return to_rate(samples.astype(np.float32), rate)

    def convert(x: np.ndarray, v: Variant) -> np.ndarray:
        # LiteEngine.convert with its fixed choices opened up
        n50 = len(x) // 320
        pad = (PAD_FRAMES if v.pad is None else v.pad) * 320
        x = np.concatenate([np.zeros(pad, np.float32), x[: n50 * 320], np.zeros(pad, np.float32)])
        n50 = len(x) // 320
        heard = x if v.formant == 1.0 else to_rate(x, int(RATE * v.formant), RATE)
        feats = engine.content.encode(heard)
        if len(feats) != n50:  # the raised copy is shorter: its frames stretched back onto the sentence's
            src = np.linspace(0, len(feats) - 1, n50)
            lo = np.floor(src).astype(int)
            hi = np.minimum(lo + 1, len(feats) - 1)
            w = (src - lo)[:, None]
            feats = feats[lo] * (1 - w) + feats[hi] * w
        content = voice.pca_basis.T @ (feats - voice.pca_mean).T
        f0 = f0_yin(x)[: 2 * n50]
        f0 = np.pad(f0, (0, 2 * n50 - len(f0)))
        target = voice.f0_stats if v.spread is None else (voice.f0_stats[0], voice.f0_stats[1] * v.spread)
        f0 = convert_f0(f0, log_f0_stats(f0), target, v.shift)
        with voice.lock:
            out = voice.generate(content.T, f0)
        return out[pad: len(out) - pad].astype(np.float32)

    def score(samples: np.ndarray, name: str) -> dict:
        return score_speech(samples, texts[name], centres[name], recognizers)

    own = []
    rows: dict[str, list[list[dict]]] = {label: [] for label, _ in variants}
    t0 = time.perf_counter()
    for name in names:
        own.append(score(clip(name), name))
        for label, v in variants:
            rows[label].append([score(convert(speak(name, v), v) if v.convert else speak(name, v), name)
                                for _ in range(args.renders)])
        print(f"  {name} ({time.perf_counter() - t0:.0f} s)", flush=True)

    asrs = list(recognizers)
    rng = np.random.default_rng(0)

    def totals(label: str, asr: str) -> tuple[np.ndarray, np.ndarray]:
        if label is OWN:
            return (np.array([r[asr][0] for r in own], float) * args.renders,
                    np.array([r[asr][1] for r in own], float) * args.renders)
        return (np.array([sum(r[asr][0] for r in s) for s in rows[label]], float),
                np.array([sum(r[asr][1] for r in s) for s in rows[label]], float))

    def gap(a: str, b: str, asr: str) -> str:
        g, lo, hi = paired_gap(*totals(a, asr), *totals(b, asr), rng)
        return f"{100 * g:+.1f} ({100 * lo:+.1f}..{100 * hi:+.1f})"

    first = variants[0][0]
    lines = [f"Lite conversion settings screened on {Path(args.artifact).name}: {len(names)} held-out en sentences"
             f" × {args.renders} renderings; recognizers as the product configures them ("
             + "; ".join(f"{k}: {d}" for k, d in describe(recognizers).items()) + "; the prompt is for fr/es only)",
             f"{'':34}{'similarity':>11}{'WER tiny.en':>13}{'WER base':>10}   gap to own recordings, points (paired 95 % CI)"
             f"   | difference to '{first}'"]
    own_w = [totals(OWN, a) for a in asrs]
    lines.append(f"{'own recordings':34}{np.mean([r['sim'] for r in own]):>11.3f}"
                 + "".join(f"{100 * e.sum() / w.sum():>12.1f}%" if i == 0 else f"{100 * e.sum() / w.sum():>9.1f}%"
                           for i, (e, w) in enumerate(own_w)))
    for label, v in variants:
        spec = ",".join(f"{k}:{getattr(v, k)}" for k in Variant.__dataclass_fields__ if getattr(v, k) != getattr(Variant(), k))
        wers = [totals(label, a) for a in asrs]
        lines.append(f"{(label + (' (' + spec + ')' if spec else '')):34}"
                     f"{np.mean([r['sim'] for s in rows[label] for r in s]):>11.3f}"
                     + "".join(f"{100 * e.sum() / w.sum():>12.1f}%" if i == 0 else f"{100 * e.sum() / w.sum():>9.1f}%"
                               for i, (e, w) in enumerate(wers))
                     + "   " + "; ".join(f"{a} {gap(label, OWN, a)}" for a in asrs)
                     + ("" if label == first else "   | " + "; ".join(f"{a} {gap(label, first, a)}" for a in asrs)))
    if args.diffs:
        lines.append("")
        lines.append("per sentence: errors (tiny.en/base, over the renderings) and what was heard, normalised, first rendering")
        for i, name in enumerate(names):
            lines.append(f"  {name}: said {normalize(texts[name])!r}")
            lines.append(f"    {'recording':14} {own[i]['tiny.en'][0]}/{own[i]['base'][0]:<3} "
                         f"{normalize(own[i]['heard']['tiny.en'])!r} | {normalize(own[i]['heard']['base'])!r}")
            for label, _ in variants:
                s = rows[label][i]
                errs = "/".join(str(sum(r[a][0] for r in s)) for a in asrs)
                lines.append(f"    {label:14} {errs:<5} {normalize(s[0]['heard']['tiny.en'])!r} | {normalize(s[0]['heard']['base'])!r}")
    text = "\n".join(lines)
    print(text)
    if args.write:
        Path(args.write).write_text(text + "\n")


def describe(recognizers: dict) -> dict[str, str]:
    return {name: (asr.english if asr.dirs["en"] is not None else asr.multilingual).describe()
            for name, asr in recognizers.items()}


if __name__ == "__main__":
    main()
