"""The voice image keeps its base's CUDA torch: the project's CPU pin never reaches the image's pip."""
from __future__ import annotations

import subprocess
import sys

from RVC.image_requirements import requirements
from tests.conftest import ROOT


def test_the_image_installs_everything_but_torch_with_the_installed_torch_held():
    wanted = requirements(ROOT / "pyproject.toml")
    names = {w.split("=")[0].split(">")[0].split("[")[0].strip().lower() for w in wanted}
    assert "torch" not in names and {"faiss-cpu", "pyworld", "numpy", "resemblyzer"} <= names
    pins = subprocess.run([sys.executable, "RVC/image_requirements.py", "--keep-installed"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.split()
    import torch

    assert f"torch=={torch.__version__.split('+')[0]}" in pins

    dockerfile = (ROOT / "RVC" / "Dockerfile").read_text()
    install = dockerfile[dockerfile.index("RUN python RVC/image_requirements.py"):]
    assert "-r /tmp/requirements.txt -c /tmp/keep-base-torch.txt" in install and "--no-deps -e ." in install
    assert "torch.version.cuda" in install, "the build must fail when torch lost its CUDA build"
    assert "pip install --no-cache-dir -e ." not in dockerfile, "a plain install would pull the CPU pin over CUDA torch"
