"""The lite engine's pretrained base: what every voice is fine-tuned from, as RVC fine-tunes from its pretrained G/D.

A voice trained from nothing needs thousands of GPU steps before it says words; two CPU cores give it a few
hundred in half an hour. Starting from a network that already turns Whisper content and F0 into speech, those
steps only have to move the timbre. The base is trained once, on a GPU, on every voice the project can use
freely: the shared fr speaker, part of the es speaker, the bundled Piper voice reading sentences and eSpeak NG
in three languages (its content is what the base TTS gives at run time, so the network learns to voice exactly
that). The en speaker is kept out: it is the demo voice and the one the goals are measured on.

It ships as `RVC/base/lite-base.pt` (generator and discriminators in float16, the content projection every
voice must share), loaded with torch's weights-only loader. Making it again:

    python -m RVC.lite_base prepare --out-dir .lite-data          # CPU host: features → base.npz, en.npz
    python -m RVC.lite_train --data .lite-data/base.npz --out RVC/base/lite-base.pt --as-base --seconds 420
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BASE_PATH = Path(__file__).resolve().parent / "base" / "lite-base.pt"
EN_SPLIT = Path(__file__).resolve().parent / "data" / "en_split.json"
BASE_FORMAT = "doppel-lite-base"


def load_base(path: Path = BASE_PATH) -> dict | None:
    """The shipped base (weights-only load), or None where it is missing (a checkout without it trains from scratch)."""
    import torch

    if not Path(path).is_file():
        return None
    art = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(art, dict) or art.get("format") != BASE_FORMAT:
        raise ValueError(f"{path} is not a lite base model")
    return art


def base_projection(base: dict):
    from RVC.lite_data import Projection

    return Projection(base["pca_mean"].numpy(), base["pca_basis"].numpy())


def _transcripts(lang: str) -> dict[str, str]:
    # the Asterisk prompts the tests use (a maintenance step run from a checkout, where tests/ is importable)
    from tests.speech import speech_clips

    return {path.stem: text for path, _, text in speech_clips(lang)}


def _real(lang: str, names: list[str], minutes: float) -> tuple[list[np.ndarray], list[bytes]]:
    from adapters.media import decode_audio
    from tests.speech import speech_clip

    clips, oggs, total = [], [], 0.0
    for name in names:
        if total >= minutes * 60:
            break
        ogg = speech_clip(lang, name).read_bytes()
        x = decode_audio(ogg).samples
        clips.append(x)
        oggs.append(ogg)
        total += len(x) / 16000
    return clips, oggs


def _spoken(synth, texts: list[str], language: str, minutes: float) -> tuple[list[np.ndarray], list[bytes]]:
    """Base-TTS speech, passed through Opus like the recordings, so the features see what training will hear."""
    from adapters.media import decode_audio, encode_ogg_opus
    from core.types import Audio

    clips, oggs, total = [], [], 0.0
    for text in texts:
        if total >= minutes * 60:
            break
        a = synth.synthesize_sync(text, language)
        if a.seconds < 0.5:
            continue
        pad = np.zeros(int(0.2 * a.sample_rate), np.float32)  # the recordings open and close with a pause
        ogg = encode_ogg_opus(Audio(np.concatenate([pad, a.samples, pad]), a.sample_rate), bitrate=32_000)
        x = decode_audio(ogg).samples
        clips.append(x)
        oggs.append(ogg)
        total += len(x) / 16000
    return clips, oggs


def _keep_long(clips: list[np.ndarray], oggs: list[bytes]) -> tuple[list[np.ndarray], list[bytes]]:
    pairs = [(c, o) for c, o in zip(clips, oggs) if len(c) >= 16 * 320]
    return [c for c, _ in pairs], [o for _, o in pairs]


def prepare(out_dir: Path, cache: Path) -> None:
    from adapters.tts_espeak import EspeakSynthesizer
    from adapters.tts_piper import PiperSynthesizer, bundled_voice
    from RVC.features import bundled_content
    from RVC.lite_data import Projection, build_dataset, compact

    t0 = time.perf_counter()
    split = json.loads(EN_SPLIT.read_text())
    held_apart = set(split["eval"]) | set(split["reference"])
    en_texts = _transcripts("en")
    # sentences the goals are scored on are never spoken into the base
    en_train_texts = [en_texts[n] for n in split["train"] if n not in held_apart]
    parts: list[tuple[list[np.ndarray], list[bytes]]] = []
    for lang, minutes in (("fr", 15.0), ("es", 15.0)):
        parts.append(_real(lang, sorted(_transcripts(lang)), minutes))
    parts.append(_spoken(PiperSynthesizer(*bundled_voice(), threads=2), en_train_texts, "en", 12.0))
    espeak = EspeakSynthesizer()
    for lang in ("en", "fr", "es"):
        texts = en_train_texts[1::2] if lang == "en" else list(_transcripts(lang).values())[1::3]
        parts.append(_spoken(espeak, texts, lang, 2.0))
    clips, oggs = _keep_long([c for p in parts for c in p[0]], [o for p in parts for o in p[1]])
    print(f"base: {sum(len(c) for c in clips) / 16000 / 60:.1f} min from {len(clips)} clips "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    content = bundled_content(cache)
    # one lowered copy for the base (the voices get three): enough to teach that content does not carry timbre
    raw = build_dataset(clips, content, 128, perturbations=(0.8,),
                        progress=lambda i, n: print(f"  base features {i}/{n}", flush=True) if i % 100 == 0 else None)
    projection = Projection(raw["pca_mean"], raw["pca_basis"])
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / "base.npz", **compact(raw, oggs))  # type: ignore[arg-type]  # numpy's stubs match **arrays to allow_pickle
    print(f"base set written ({time.perf_counter() - t0:.0f} s)", flush=True)

    en_clips, en_oggs = _keep_long(*_real("en", split["train"], 1e9))
    en = build_dataset(en_clips, content, 128, projection=projection,
                       progress=lambda i, n: print(f"  en features {i}/{n}", flush=True) if i % 100 == 0 else None)
    np.savez(out_dir / "en.npz", **compact(en, en_oggs))  # type: ignore[arg-type]  # as above
    print(f"en set written: {len(en['f0']) / 6000:.1f} min ({time.perf_counter() - t0:.0f} s)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="the base's and the en demo voice's training sets (CPU host)")
    p.add_argument("--out-dir", default=str(ROOT / ".lite-data"))
    p.add_argument("--cache", default=str(ROOT / "var" / "cache"))
    args = ap.parse_args()
    if args.cmd == "prepare":
        prepare(Path(args.out_dir), Path(args.cache))


if __name__ == "__main__":
    main()
