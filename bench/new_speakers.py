"""Cloning people the base never heard (issue 23): the development speakers, trained as `doppel worker` trains them.

    python bench/new_speakers.py [--speakers it,es,fr] [--recipes cpu] [--device cpu|cuda] [--seconds S]
        [--sentences 20] [--renders 2] [--phase all|train|score] [--demo] [--work var/new-speakers] [--write FILE]

Per development speaker (RVC/debian_speech.py: Debian's asterisk-prompt-it-menardi-wav, -es-co, -fr-armelle; 5
minutes of each to train on, every other prompt held apart): the training set and the fine-tune go through the
worker's own functions (RVC/lite_recipe.py: `training_set`, `fine_tune` by a named recipe, then
`lite_train.export`), from the shipped base, for `--seconds` (default: the recipe's budget) on `--device`. Then the
bench's sentences (bench/new_speakers_text.py) × `--renders`: English spoken by Piper and the speaker's language by
Pico, every voice converting the same renderings with `LiteEngine`. Scores: speaker similarity (resemblyzer cosine
to the centroid of the held-apart recordings) and WER by Whisper base (decoding as the product configures it) with
the project's normaliser (adapters/wer.py), bootstrap 95 % intervals over sentences; beside each voice, the source
voice unconverted (its WER is what the goals are relative to, with a paired interval for the gap). `--demo` adds the
demo voice on the English sentences, against its speaker's held-apart clips (RVC/data/en_split.json 'reference').

Everything is cached under `--work` (features, artifacts, renderings, one JSON line per score), so a run cut off
resumes where it stopped, `--phase train` on a GPU machine and `--phase score` elsewhere split the work, and a
second recipe reuses the features and renderings. Goals (issue 23, GPU, ≤ 10 minutes of training): similarity ≥ 0.80,
WER ≤ the source's + 3 points in both languages; CPU: similarity ≥ 0.75 and ≤ + 8 points in 30 minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lite_voice_goals import paired_gap
from bench.new_speakers_text import SENTENCES

DEMO = "demo voice"
GOALS = {"gpu": (0.80, 0.03), "cpu": (0.75, 0.08)}  # similarity at least, WER gap to the source at most


def _json_line(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def artifact_path(work: Path, lang: str, recipe: str, device: str, seconds: float) -> Path:
    return work / lang / f"{recipe}-{device}-{seconds:.0f}s.lite.pt"


def _base() -> dict:
    from RVC.lite_base import load_base

    base = load_base()
    if base is None:
        raise SystemExit("RVC/base/lite-base.pt is missing: the recipe fine-tunes from it")
    return base


def speaker_dataset(lang: str, work: Path, cache: Path) -> Path:
    """The speaker's training set, as the worker builds it (in the base's content coordinates), made once."""
    import torch

    from RVC.debian_speech import dev_split, read_audio
    from RVC.features import bundled_content
    from RVC.lite_recipe import training_set

    folder = work / lang
    folder.mkdir(parents=True, exist_ok=True)
    dataset = folder / "dataset.npz"
    if not dataset.exists():
        split = dev_split(lang)
        t0 = time.perf_counter()
        clips = [read_audio(p) for p in split.train]
        data: dict = training_set(clips, _base(), bundled_content(cache, threads=torch.get_num_threads()),
                            progress=lambda i, n: print(f"  {lang} features {i}/{n}", flush=True) if i % 20 == 0 else None)
        np.savez(folder / "dataset.tmp.npz", **data)
        (folder / "dataset.tmp.npz").replace(dataset)
        print(f"{lang}: {len(clips)} clips, {split.train_seconds:.0f} s; features in {time.perf_counter() - t0:.0f} s", flush=True)
    return dataset


def train_speaker(lang: str, recipe_name: str, device: str, seconds: float | None, work: Path, cache: Path) -> Path:
    """One fine-tune per speaker, recipe and budget, through the worker's own functions."""
    import torch

    from RVC.lite_data import expand
    from RVC.lite_recipe import fine_tune, recipe_for
    from RVC.lite_train import export

    recipe = recipe_for(device, recipe_name)
    budget = recipe.max_seconds if seconds is None else seconds
    out = artifact_path(work, lang, recipe.name, device, budget)
    if out.exists():
        return out
    base = _base()
    data = expand(dict(np.load(speaker_dataset(lang, work, cache), allow_pickle=False)))
    where = torch.cuda.get_device_name() if device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"{lang}: training {recipe.describe()} for {budget:.0f} s on {where}", flush=True)
    t0 = time.perf_counter()

    def show(step: int, total: int, elapsed: float, losses: dict) -> None:
        print(f"  {lang} {recipe.name} step {step} {elapsed:.0f}s " + " ".join(f"{k}={v:.3f}" for k, v in losses.items()), flush=True)

    net, state = fine_tune(data, base, recipe, max_seconds=budget, device=device, progress=show, report_every=100)
    spent = time.perf_counter() - t0
    export(net, data, out, steps=state["step"], seconds=spent)
    _json_line(work / "training.jsonl", {"lang": lang, "recipe": recipe.name, "device": device, "where": where,
                                         "budget": budget, "steps": state["step"], "seconds": round(spent, 1),
                                         "artifact": out.name, "mel": state["losses"].get("mel")})
    print(f"{lang}: {state['step']} steps in {spent:.0f} s → {out.name}", flush=True)
    return out


class Sources:
    """Each sentence's renderings, made once and kept, so every voice (and a resumed run) converts the same audio."""

    def __init__(self, work: Path, renders: int) -> None:
        self.folder = work / "sources"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.renders = renders
        self._piper: Any = None
        self._pico: Any = None

    def get(self, lang: str, i: int, r: int) -> np.ndarray:
        path = self.folder / f"{lang}-{i:02d}-{r}.npy"
        if path.exists():
            return np.load(path)
        from RVC.features import to_rate

        text = SENTENCES[lang][i]
        if lang == "en":
            if self._piper is None:
                from adapters.tts_piper import PiperSynthesizer, bundled_voice

                self._piper = PiperSynthesizer(*bundled_voice(), threads=2)
            audio = self._piper.synthesize_sync(text, "en")
        else:
            if self._pico is None:
                from adapters.tts_pico import PicoSynthesizer

                self._pico = PicoSynthesizer()
            audio = self._pico.synthesize_sync(text, lang)  # Pico is deterministic: renderings differ only for Piper
        x = to_rate(audio.samples, audio.sample_rate).astype(np.float32)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, x)
        tmp.replace(path)  # scoring processes running at once never read half a file
        return x


def centroid_for(lang: str, work: Path) -> np.ndarray:
    """The centroid of a speaker's held-apart recordings (cached); 'demo': the demo speaker's reference clips."""
    path = work / f"centroid-{lang}.npy"
    if path.exists():
        return np.load(path)
    from RVC.debian_speech import dev_split, package_audio, read_audio
    from RVC.speaker import centroid, embed

    if lang == "demo":
        names = set(json.loads((ROOT / "RVC" / "data" / "en_split.json").read_text())["reference"])
        paths = [p for p in package_audio("asterisk-core-sounds-en-wav") if p.stem in names]
    else:
        paths = dev_split(lang).held
    c = centroid([embed(read_audio(p)) for p in paths])
    np.save(path, c)
    print(f"centroid {lang}: {len(paths)} held-apart clips", flush=True)
    return c


def score_all(voices: list[tuple[str, str, Path | None, list[str]]], work: Path, cache: Path, sentences: int,
              renders: int, threads: int) -> list[dict]:
    """voices: (speaker, label, artifact or None for the unconverted source, languages). One JSON line per score."""
    from adapters.wer import sentence_errors
    from bench.lite_voice_goals import recognizers_as_configured
    from core.errors import NoSpeech
    from core.types import Audio
    from RVC.engines.lite import LiteEngine
    from RVC.features import RATE, bundled_content
    from RVC.speaker import embed

    scores_path = work / "scores.jsonl"
    known = _read_lines(scores_path)
    done = {(r["speaker"], r["label"], r["lang"], r["i"], r["r"]) for r in known}
    # what the judge heard in an unconverted rendering does not depend on whose centroid it is compared with
    heard_source = {(r["lang"], r["i"], r["r"]): r["heard"] for r in known if r["label"] == "source"}
    sources = Sources(work, renders)
    judge = recognizers_as_configured(cache, ("base",), threads)["base"]
    engine = LiteEngine(bundled_content(cache, threads), threads=threads)
    t0 = time.perf_counter()
    for speaker, label, artifact, langs in voices:
        centre = centroid_for(speaker, work)
        for lang in langs:
            for i in range(sentences):
                for r in range(renders if lang == "en" else 1):
                    if (speaker, label, lang, i, r) in done:
                        continue
                    x = sources.get(lang, i, r)
                    if artifact is not None:
                        x, _ = engine.convert(x, RATE, {"artifact": str(artifact)})
                    heard = heard_source.get((lang, i, r)) if artifact is None else None
                    if heard is None:
                        try:
                            heard = judge.transcribe_sync(Audio(np.asarray(x, np.float32), RATE), lang).text
                        except NoSpeech:
                            heard = ""
                        if artifact is None:
                            heard_source[(lang, i, r)] = heard
                    errors, words = sentence_errors(SENTENCES[lang][i], heard, lang)
                    _json_line(scores_path, {"speaker": speaker, "label": label, "lang": lang, "i": i, "r": r,
                                             "sim": float(np.dot(embed(x), centre)), "errors": errors, "words": words,
                                             "heard": heard})
            print(f"  scored {speaker} {label} {lang} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return _read_lines(scores_path)


def _per_sentence(rows: list[dict], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sentence: mean similarity, errors and words summed over renderings."""
    sim, e, w = np.zeros(n), np.zeros(n), np.zeros(n)
    count = np.zeros(n)
    for row in rows:
        if row["i"] < n:
            sim[row["i"]] += row["sim"]
            count[row["i"]] += 1
            e[row["i"]] += row["errors"]
            w[row["i"]] += row["words"]
    return sim / np.maximum(count, 1), e, w


def _ci(values: list[np.ndarray], rng: np.random.Generator, stat, n: int = 2000) -> tuple[float, float]:
    idx = rng.integers(0, len(values[0]), (n, len(values[0])))
    draws = [stat(*(v[ix] for v in values)) for ix in idx]
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def table(rows: list[dict], voices: list[tuple[str, str, Path | None, list[str]]], sentences: int, goal: str,
          renders: int) -> list[str]:
    rng = np.random.default_rng(0)
    rows = [r for r in rows if r["r"] < renders]  # a run with fewer renderings than the cache holds scores alike
    min_sim, max_gap = GOALS[goal]
    lines = [f"{'speaker':9}{'voice':34}{'lang':5}{'similarity [95% CI]':>24}{'WER [95% CI]':>22}   gap to the source, points [paired 95% CI]"]
    for speaker, label, artifact, langs in voices:
        for lang in langs:
            mine = [r for r in rows if r["speaker"] == speaker and r["label"] == label and r["lang"] == lang]
            if not mine:
                continue
            n = min(sentences, 1 + max(r["i"] for r in mine))
            sim, e, w = _per_sentence(mine, n)
            slo, shi = _ci([sim], rng, lambda s: s.mean())
            wlo, whi = _ci([e, w], rng, lambda a, b: a.sum() / b.sum())
            gap_text, verdict = "", ""
            if artifact is not None:
                src = [r for r in rows if r["speaker"] == speaker and r["label"] == "source" and r["lang"] == lang]
                _, se, sw = _per_sentence(src, n)
                if sw.sum():
                    gap, lo, hi = paired_gap(e, w, se, sw, rng)
                    gap_text = f"{100 * gap:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                    met = sim.mean() >= min_sim and gap <= max_gap
                    verdict = f"  {goal} goal {'met' if met else 'NOT met'}"
            lines.append(f"{speaker:9}{label:34}{lang:5}{sim.mean():>9.3f} [{slo:.3f}, {shi:.3f}]"
                         f"{100 * e.sum() / max(w.sum(), 1):>9.1f} % [{100 * wlo:.1f}, {100 * whi:.1f}]   {gap_text}{verdict}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speakers", default="it,es,fr")
    ap.add_argument("--recipes", default="", help="comma-separated recipe names (RVC/lite_recipe.py); default: the device's")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--seconds", type=float, default=None, help="training budget (default: the recipe's)")
    ap.add_argument("--sentences", type=int, default=20)
    ap.add_argument("--renders", type=int, default=2, help="Piper renderings of each English sentence")
    ap.add_argument("--phase", default="all", choices=("all", "features", "train", "score", "report"),
                    help="features: the training sets and the renderings (to carry to a GPU machine); "
                         "report: the table from the scores so far")
    ap.add_argument("--demo", action="store_true", help="also score the demo voice on the English sentences")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--work", default=str(ROOT / "var" / "new-speakers"))
    ap.add_argument("--cache", default=str(ROOT / "var" / "cache"))
    ap.add_argument("--write", default="", help="also write the table to this file")
    args = ap.parse_args()

    import torch

    from RVC.lite_recipe import recipe_for

    torch.set_num_threads(args.threads)
    work, cache = Path(args.work), Path(args.cache)
    work.mkdir(parents=True, exist_ok=True)
    langs = [s for s in args.speakers.split(",") if s]
    recipes = [recipe_for(args.device, name or None) for name in (args.recipes.split(",") if args.recipes else [""])]
    t0 = time.perf_counter()
    voices: list[tuple[str, str, Path | None, list[str]]] = []
    for lang in langs:
        if args.phase == "features":
            speaker_dataset(lang, work, cache)
            # the renderings too: made once here, every later process (and machine) converts the same audio
            sources = Sources(work, args.renders)
            for text_lang in ("en", lang):
                for i in range(args.sentences):
                    for r in range(args.renders if text_lang == "en" else 1):
                        sources.get(text_lang, i, r)
            centroid_for(lang, work)  # and the centroid: no recording needs to travel to score elsewhere
            continue
        voices.append((lang, "source", None, ["en", lang]))
        for recipe in recipes:
            budget = recipe.max_seconds if args.seconds is None else args.seconds
            artifact = artifact_path(work, lang, recipe.name, args.device, budget)
            if args.phase not in ("score", "report"):
                artifact = train_speaker(lang, recipe.name, args.device, args.seconds, work, cache)
            if artifact.exists():
                voices.append((lang, f"{recipe.name} {args.device} {budget:.0f}s", artifact, ["en", lang]))
            else:
                print(f"{lang}: no artifact {artifact.name} yet (run --phase train)", flush=True)
    if args.demo:
        voices += [("demo", "source", None, ["en"]), ("demo", DEMO, ROOT / "assets" / "demo" / "voice.lite.pt", ["en"])]
        if args.phase == "features":
            centroid_for("demo", work)
    if args.phase in ("features", "train"):
        return
    rows = (_read_lines(work / "scores.jsonl") if args.phase == "report"
            else score_all(voices, work, cache, args.sentences, args.renders, args.threads))
    trained = {(r["lang"], r["artifact"]): r for r in _read_lines(work / "training.jsonl")}
    load = os.getloadavg()
    lines = [f"New speakers (bench/new_speakers.py): {args.sentences} sentences per language, English × {args.renders} "
             f"Piper renderings, the speaker's language × 1 Pico rendering; judge Whisper base; "
             + (f"scored on {args.threads} CPU threads, load {load[0]:.1f}/{load[1]:.1f} ({time.perf_counter() - t0:.0f} s)"
                if args.phase != "report" else "from the scores cached by earlier runs")]
    for speaker, label, path, _ in voices:
        if path is not None and (speaker, path.name) in trained:
            t = trained[(speaker, path.name)]
            lines.append(f"  {t['lang']} {label}: {t['steps']} steps in {t['seconds']:.0f} s on {t['where']}")
    lines += table(rows, voices, args.sentences, "gpu" if args.device == "cuda" else "cpu", args.renders)
    text = "\n".join(lines)
    print(text)
    if args.write:
        Path(args.write).write_text(text + "\n")


if __name__ == "__main__":
    main()
