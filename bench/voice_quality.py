"""Lite voice quality on the fixed en split (RVC/data/en_split.json): similarity, WER, CPU speed, training time.

    python bench/voice_quality.py prepare            # features of the train split → .lite-data/en_train.npz
    python -m RVC.lite_train --data .lite-data/en_train.npz --out .lite-data/en.lite.pt   # on a GPU machine
    python bench/voice_quality.py evaluate --artifact .lite-data/en.lite.pt --train-log train.log

Similarity: mean resemblyzer cosine of each utterance to the centroid of held-apart real clips.
WER: the bundled tiny.en recognizer on converted vs unconverted base-TTS speech of 20 held-apart transcripts.
"""
from __future__ import annotations

import argparse
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
DATA = ROOT / ".lite-data"


def _clips(names: list[str]) -> list[np.ndarray]:
    from adapters.media import decode_audio

    return [decode_audio((SPEECH / f"{n}.ogg").read_bytes()).samples for n in names]


def _texts() -> dict[str, str]:
    import csv

    with open(SPEECH / "transcripts.tsv", newline="", encoding="utf-8") as f:
        return {r["clip"]: r["text"] for r in csv.DictReader(f, delimiter="\t")}


def prepare(args: argparse.Namespace) -> None:
    from RVC.features import bundled_content
    from RVC.lite_data import build_dataset

    split = json.loads(SPLIT.read_text())
    t0 = time.perf_counter()
    data = build_dataset(_clips(split["train"]), bundled_content(ROOT / "var" / "cache"), dims=args.dims)
    DATA.mkdir(exist_ok=True)
    np.savez_compressed(DATA / "en_train.npz", **data)
    print(f"prepared {len(data['f0']) / 100 / 60:.1f} min in {time.perf_counter() - t0:.0f} s → {DATA / 'en_train.npz'}")


def word_error_rate(ref: str, hyp: str) -> tuple[int, int]:
    norm = lambda s: re.sub(r"[^a-z0-9' ]+", " ", s.lower()).split()  # noqa: E731
    r, h = norm(ref), norm(hyp)
    d = np.arange(len(h) + 1)
    for i, rw in enumerate(r, 1):
        prev, d = d, np.empty_like(d)
        d[0] = i
        for j, hw in enumerate(h, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (rw != hw))
    return int(d[-1]), len(r)


def evaluate(args: argparse.Namespace) -> None:
    import torch
    from adapters.asr_whisper import WhisperRecognizer
    from adapters.tts_piper import PiperSynthesizer, bundled_voice
    from adapters.whisper_models import english_tiny_dir
    from core.types import Audio
    from RVC.engines.lite import LiteEngine
    from RVC.features import RATE, bundled_content, to_rate
    from RVC.speaker import centroid as make_centroid
    from RVC.speaker import embed

    torch.set_num_threads(2)
    split = json.loads(SPLIT.read_text())
    texts = _texts()
    real_clips = _clips(split["reference"] + split["eval"])
    real = [embed(x) for x in real_clips]
    centroid = make_centroid(real)
    sim = lambda x: float(np.dot(embed(x), centroid))  # noqa: E731

    tts = PiperSynthesizer(*bundled_voice(), threads=2)
    engine = LiteEngine(bundled_content(ROOT / "var" / "cache"))
    params = {"artifact": str(args.artifact)}
    engine.voice(args.artifact)
    asr = WhisperRecognizer(english_tiny_dir(), None, threads=2)
    rows = {"unconverted": [], "converted": []}
    convert_seconds = audio_seconds = 0.0
    engine.convert(tts.synthesize_sync("Warm up.").samples, 22050, params)
    # Piper samples its timing and noise afresh on every call, so one rendering per transcript makes the
    # unconverted WER (the ratio's denominator) swing between runs; several renderings steady it.
    for name in [n for n in split["eval"] for _ in range(args.renders)]:
        spoken = tts.synthesize_sync(texts[name])
        plain = to_rate(spoken.samples, spoken.sample_rate)
        t0 = time.perf_counter()
        out, rate = engine.convert(spoken.samples, spoken.sample_rate, params)
        convert_seconds += time.perf_counter() - t0
        audio_seconds += spoken.seconds
        for key, x in (("unconverted", plain), ("converted", out)):
            heard = asr.transcribe_sync(Audio(x, RATE), "en").text
            errors, words = word_error_rate(texts[name], heard)
            rows[key].append((sim(x), errors, words))
        if args.save_dir:
            from adapters.media import encode_wav

            Path(args.save_dir).mkdir(parents=True, exist_ok=True)
            (Path(args.save_dir) / f"{name}.wav").write_bytes(encode_wav(Audio(out, rate)))
    real_eval = [float(np.dot(e, centroid)) for e in real[len(split["reference"]):]]
    # The speaker's own recordings of the same sentences: how intelligible a perfect clone would be to this recognizer.
    real_counts = [word_error_rate(texts[name], asr.transcribe_sync(Audio(x, RATE), "en").text)
                   for name, x in zip(split["eval"], real_clips[len(split["reference"]):])]
    w_real = sum(e for e, _ in real_counts) / sum(n for _, n in real_counts)
    summary = {k: (np.mean([r[0] for r in v]), sum(r[1] for r in v) / max(1, sum(r[2] for r in v))) for k, v in rows.items()}
    (s_plain, w_plain), (s_conv, w_conv) = summary["unconverted"], summary["converted"]
    rtf = audio_seconds / convert_seconds
    train_line = Path(args.train_log).read_text().strip().splitlines()[-1] if args.train_log else "not given"
    lines = [
        f"Lite voice quality — en split (RVC/data/en_split.json), {len(split['eval'])} held-apart transcripts"
        f" × {args.renders} renderings, base TTS = bundled Piper",
        f"{'':28}{'similarity':>12}{'WER':>8}",
        f"{'real held-apart clips':28}{np.mean(real_eval):>12.3f}{w_real:>8.3f}",
        f"{'unconverted TTS':28}{s_plain:>12.3f}{w_plain:>8.3f}",
        f"{'converted (lite)':28}{s_conv:>12.3f}{w_conv:>8.3f}",
        f"similarity gain over unconverted: {s_conv - s_plain:+.3f}   (goal ≥ 0.80 and ≥ +0.10; baseline 0.77)",
        f"WER ratio converted / unconverted: {w_conv / max(w_plain, 1e-9):.2f}×   (goal ≤ 1.5×; baseline 1.8×;"
        f" the speaker's own recordings: {w_real / max(w_plain, 1e-9):.2f}×)",
        f"CPU conversion, {torch.get_num_threads()} threads: {audio_seconds:.1f} s of speech in {convert_seconds:.1f} s"
        f" = {rtf:.1f}× faster than real time   (baseline 3.8×)",
        f"training: {train_line}",
    ]
    if args.train_command:
        lines.append(f"training command: {args.train_command}")
    text = "\n".join(lines)
    print(text)
    out = ROOT / "bench" / "results" / "voice_quality.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--dims", type=int, default=128)
    e = sub.add_parser("evaluate")
    e.add_argument("--artifact", required=True)
    e.add_argument("--train-log", default="")
    e.add_argument("--train-command", default="")
    e.add_argument("--save-dir", default="")
    e.add_argument("--renders", type=int, default=3, help="base-TTS renderings of each transcript")
    args = ap.parse_args()
    {"prepare": prepare, "evaluate": evaluate}[args.cmd](args)


if __name__ == "__main__":
    main()
