"""F0 for the rvc engine, every 10 ms at 16 kHz (0 = unvoiced).

RVC models are trained on harvest, crepe or rmvpe pitch; `harvest` (WORLD, through pyworld) is the one of
those available here without downloaded weights, run with the settings of RVC's own pipeline (50–1100 Hz,
then a 3-point median). `yin` is doppel's own and the fastest; `pyin` is librosa's. bench/f0_methods.py
measures them against each other on real speech.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from core.errors import BadInput
from RVC.features import RATE, f0_yin

F0_METHODS = ("harvest", "yin", "pyin")
F0_MIN, F0_MAX = 50.0, 1100.0


@cache
def _pyworld():
    """pyworld's compiled module. Its package __init__ asks the long-deprecated pkg_resources for a version
    string, which current setuptools no longer ships, so the extension is loaded directly when that fails."""
    try:
        import pyworld

        return pyworld
    except ModuleNotFoundError as exc:
        if exc.name != "pkg_resources":
            raise
    import importlib.machinery
    import importlib.util

    spec = importlib.util.find_spec("pyworld")
    folder = Path(spec.origin).parent
    library = next(folder.glob("pyworld*.so"), None) or next(folder.glob("pyworld*.pyd"))
    loader = importlib.machinery.ExtensionFileLoader("pyworld.pyworld", str(library))
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("pyworld.pyworld", library, loader=loader))
    loader.exec_module(module)
    return module


def _harvest(x: np.ndarray) -> np.ndarray:
    from scipy.signal import medfilt

    f0, _ = _pyworld().harvest(x.astype(np.float64), fs=RATE, f0_floor=F0_MIN, f0_ceil=F0_MAX, frame_period=10)
    return medfilt(f0, 3)


def _pyin(x: np.ndarray) -> np.ndarray:
    import librosa

    f0, voiced, _ = librosa.pyin(x, fmin=60, fmax=700, sr=RATE, frame_length=1024, hop_length=160)
    return np.where(voiced, np.nan_to_num(f0), 0)


def estimate_f0(x: np.ndarray, method: str, frames: int) -> np.ndarray:
    """16 kHz samples → exactly `frames` F0 values (cut, or padded with unvoiced frames)."""
    if method == "harvest":
        f0 = _harvest(x)
    elif method == "yin":
        f0 = f0_yin(x)
    elif method == "pyin":
        f0 = _pyin(x)
    else:
        raise BadInput(f"Unknown F0 method '{method}'; use one of {', '.join(F0_METHODS)}.")
    f0 = np.asarray(f0, np.float32)[:frames]
    return np.pad(f0, (0, frames - len(f0)))
