"""Does the GeneFace++ image's Python set resolve, for the image's platform and Python, to exactly the pins?

There is no Docker engine here, so the image is checked the way pip would see it inside: its requirements
(geneface/image/requirements.txt) with its constraints (constraints.txt) are resolved against the package
index for CPython 3.9 on manylinux x86_64 (`pip install --dry-run --report --python-version 3.9 --platform ...`).
The check passes when the resolution succeeds and every package it picks is pinned in constraints.txt at the
version picked (nothing floats). The sources-only packages are checked apart: each pinned sdist exists and
what it declares it needs is satisfied by the resolved set.

torch and torchvision are pinned as the PyTorch index's CUDA 11.8 builds (2.0.1+cu118, 0.15.2+cu118). When that
index is not reachable (a host that reaches PyPI only), their PyPI twins of the same versions stand in: the
same packages and dependencies, except that the PyPI build of torch 2.0.1 also pulls NVIDIA's CUDA 11.7 pip
packages (nvidia-*-cu11), which the +cu118 wheels carry inside and which are then left out of the comparison.

    python bench/geneface_image.py            # the check (prints the result; exit 1 when it fails)
    python bench/geneface_image.py --lock     # re-resolve the set as of LOCK_DATE and rewrite constraints.txt
    python bench/geneface_image.py --unpinned # for contrast: what the same requirements resolve to today with
                                              # only torch pinned (what an unpinned install would get)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "geneface" / "image"
PYTHON_VERSION = "3.9"
PLATFORMS = ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux1_x86_64", "linux_x86_64"]
# the pinned GeneFace++ commit's last code change was 2024-04-04: resolve as of then, so every package is
# one its code was written against (newer ones changed APIs it uses)
LOCK_DATE = "2024-05-01T00:00:00Z"
# pins the upstream requirements or their code need; the rest is whatever resolved as of LOCK_DATE
SEED = ["torch==2.0.1", "torchvision==0.15.2", "torchaudio==2.0.2", "numpy==1.23.5", "numba==0.56.4", "scipy==1.11.1",
        "librosa==0.9.2", "kornia==0.5.0", "protobuf==3.20.3", "decorator<5", "proglog<=1.0.0"]
SDISTS = {"moviepy": "1.0.3", "fvcore": "0.1.5.post20221221"}
TORCH_INDEX_LOCAL = "+cu118"


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> tuple[list[str], list[str]]:
    """(names resolved from wheels, names published as sources only)."""
    wheels, sdists = [], []
    for line in (IMAGE / "requirements.txt").read_text().splitlines():
        name = line.split("#")[0].strip()
        if name:
            (sdists if "# sdist" in line else wheels).append(name)
    return wheels, sdists


def constraints() -> dict[str, str]:
    pins = {}
    for line in (IMAGE / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[norm(name)] = version
    return pins


def pip_env() -> dict[str, str]:
    # only the package index: no local wheel folders, extra indexes or site constraints of this machine
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def resolve(reqs: list[str], constraint_lines: list[str], *, as_of: str = "") -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        req_file, con_file, report = Path(tmp, "r.txt"), Path(tmp, "c.txt"), Path(tmp, "report.json")
        req_file.write_text("\n".join(reqs) + "\n")
        con_file.write_text("\n".join(constraint_lines) + "\n")
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
               "--python-version", PYTHON_VERSION, "--implementation", "cp", "--only-binary=:all:",
               *[a for p in PLATFORMS for a in ("--platform", p)], "-r", str(req_file), "-c", str(con_file)]
        if as_of:
            cmd += ["--uploaded-prior-to", as_of]
        done = subprocess.run(cmd, env=pip_env(), capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit("resolution FAILED:\n" + (done.stderr or done.stdout)[-3000:])
        return [(i["metadata"]["name"], i["metadata"]["version"]) for i in json.loads(report.read_text())["install"]]


def sdist_requirements(name: str, version: str) -> list[str]:
    """What a sources-only package declares it needs (pip builds its metadata; nothing is installed)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp, "report.json")
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
                               "--quiet", "--no-binary", name, "--report", str(report), f"{name}=={version}"],
                              env=pip_env(), capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{name}=={version}: not found as a source distribution:\n{done.stderr[-2000:]}")
        return json.loads(report.read_text())["install"][0]["metadata"].get("requires_dist") or []


def satisfied(requirement: str, versions: dict[str, str]) -> str | None:
    """None when `requirement` holds in the resolved set for CPython 3.9 on Linux, else why not."""
    from packaging.requirements import Requirement

    req = Requirement(requirement)
    env = {"python_version": PYTHON_VERSION, "python_full_version": PYTHON_VERSION + ".18", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "extra": ""}
    if req.marker is not None and not req.marker.evaluate(env):
        return None
    have = versions.get(norm(req.name))
    if have is None:
        return f"{requirement}: not in the set"
    if req.specifier and not req.specifier.contains(have.split("+")[0], prereleases=True):
        return f"{requirement}: the set has {have}"
    return None


def pypi_twin(lines: list[str]) -> list[str]:
    return [line.replace(TORCH_INDEX_LOCAL, "") for line in lines]


def lock() -> None:
    wheels, _ = requirements()
    picked = resolve(wheels, SEED, as_of=LOCK_DATE)
    torch_names = {"torch", "torchvision", "torchaudio"}
    lines = [
        "# Every package of the GeneFace++ image, pinned (geneface/Dockerfile installs with -c this file).",
        f"# Written by `python bench/geneface_image.py --lock`: requirements.txt resolved for CPython {PYTHON_VERSION},",
        f"# manylinux x86_64, as of {LOCK_DATE[:10]}; torch from the PyTorch index's CUDA 11.8 builds.",
    ]
    for name, version in sorted(picked, key=lambda p: norm(p[0])):
        if norm(name).startswith("nvidia-") and norm(name).endswith("-cu11"):
            continue  # only PyPI's torch needs them; the +cu118 wheels carry CUDA inside
        lines.append(f"{name}=={version}{TORCH_INDEX_LOCAL if norm(name) in torch_names else ''}")
    lines += [f"{name}=={version}" for name, version in SDISTS.items()]
    (IMAGE / "constraints.txt").write_text("\n".join(lines) + "\n")
    print(f"constraints.txt: {len(lines) - 3} pins")


def check() -> int:
    started = time.monotonic()
    wheels, sdists = requirements()
    pins = constraints()
    constraint_lines = [f"{n}=={v}" for n, v in pins.items() if n not in {norm(s) for s in sdists}]
    print(f"GeneFace++ image: {len(wheels)} requirements from wheels + {len(sdists)} sources-only, "
          f"{len(pins)} pins; CPython {PYTHON_VERSION}, {PLATFORMS[0]}")
    print(f"torch/torchvision: {TORCH_INDEX_LOCAL} pins checked through their PyPI twins (see the docstring)")
    picked = resolve(wheels, pypi_twin(constraint_lines))
    versions = {norm(n): v for n, v in picked}
    problems = []
    for name, version in picked:
        n = norm(name)
        if n.startswith("nvidia-") and n.endswith("-cu11"):
            continue
        pinned = pins.get(n)
        if pinned is None:
            problems.append(f"{name}=={version}: resolved but not pinned")
        elif pinned.replace(TORCH_INDEX_LOCAL, "") != version:
            problems.append(f"{name}: resolved {version}, pinned {pinned}")
    for name in sdists:
        version = pins.get(norm(name))
        if version is None:
            problems.append(f"{name}: sources-only package not pinned")
            continue
        versions[norm(name)] = version
        for requirement in sdist_requirements(name, version):
            why = satisfied(requirement, versions)
            if why:
                problems.append(f"{name}=={version} needs {why}")
    unused = sorted(set(pins) - set(versions) - {"torch", "torchvision", "torchaudio"})
    print(f"resolved {len(picked)} packages in {time.monotonic() - started:.0f} s; "
          f"sources-only checked: {', '.join(f'{s}=={pins.get(norm(s))}' for s in sdists)}")
    if unused:
        print(f"pinned but not needed: {', '.join(unused)}")
    for p in problems:
        print("PROBLEM " + p)
    print("RESULT: " + ("every package resolves to its pin" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


def unpinned() -> int:
    wheels, _ = requirements()
    pins = constraints()
    picked = resolve(wheels, ["torch==2.0.1", "torchvision==0.15.2"])
    moved = [(n, pins.get(norm(n), "-"), v) for n, v in sorted(picked, key=lambda p: norm(p[0]))
             if pins.get(norm(n), "").replace(TORCH_INDEX_LOCAL, "") != v and not norm(n).startswith("nvidia-")]
    print(f"unpinned (only torch==2.0.1 held), resolved today: {len(moved)} of {len(picked)} packages differ from the pins")
    for name, pinned, now in moved:
        print(f"  {name}: pinned {pinned}, unpinned {now}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lock", action="store_true", help="rewrite constraints.txt")
    ap.add_argument("--unpinned", action="store_true", help="show what the requirements resolve to without the pins")
    args = ap.parse_args()
    if args.lock:
        lock()
        return 0
    return unpinned() if args.unpinned else check()


if __name__ == "__main__":
    sys.exit(main())
