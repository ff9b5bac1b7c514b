"""`python RVC/image_requirements.py pyproject.toml`: the project's dependencies for the voice image, one a line,
without torch; `--keep-installed`: the torch packages installed now, pinned, as a pip constraints file.
The image's base ships a CUDA build of torch; the project pins the CPU build (for laptops), which pip would
otherwise install over it, and the GPU worker would quietly run on the CPU."""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

KEPT_FROM_BASE = {"torch", "torchvision", "torchaudio"}


def requirements(pyproject: Path) -> list[str]:
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    return [d for d in deps if re.split(r"[\s\[<>=!~;]", d, maxsplit=1)[0].lower() not in KEPT_FROM_BASE]


def installed_pins() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in sorted(KEPT_FROM_BASE):
        try:
            # "2.5.1+cu124" → "==2.5.1", which pip matches to the installed local build
            pins.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            pass
    return pins


if __name__ == "__main__":
    if sys.argv[1:] == ["--keep-installed"]:
        print("\n".join(installed_pins()))
    else:
        print("\n".join(requirements(Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml"))))
