"""Does the voice image's Python set resolve with the base image's CUDA torch held? (No Docker engine needed.)

    python bench/voice_image_resolve.py [--torch 2.5.1]

Runs what RVC/Dockerfile runs — the project's dependencies without torch (RVC/image_requirements.py),
constrained to the base image's torch — as `pip install --dry-run --report` against the package index, for
this machine's platform and Python (the image's: Linux x86_64, Python 3.11). Prints the resolved torch
version and the number of packages, or pip's error.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--torch", default="2.5.1", help="the base image's torch (pytorch/pytorch:2.5.1-cuda12.4-...)")
    args = ap.parse_args()
    from RVC.image_requirements import requirements

    with tempfile.TemporaryDirectory() as tmp:
        reqs, keep, report = Path(tmp) / "requirements.txt", Path(tmp) / "keep.txt", Path(tmp) / "report.json"
        reqs.write_text("\n".join(requirements(ROOT / "pyproject.toml")) + "\n")
        keep.write_text(f"torch=={args.torch}\n")
        run = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                              "--report", str(report), "-r", str(reqs), "-c", str(keep)], capture_output=True, text=True)
        if run.returncode != 0:
            print(f"does not resolve (pip exit {run.returncode}):\n{run.stderr[-3000:]}")
            sys.exit(1)
        installed = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    print(f"resolves: {len(installed)} packages for Python {sys.version_info.major}.{sys.version_info.minor} "
          f"on {sys.platform}; torch {installed.get('torch')} (held at {args.torch}), "
          f"faiss-cpu {installed.get('faiss-cpu')}, pyworld {installed.get('pyworld')}")


if __name__ == "__main__":
    main()
