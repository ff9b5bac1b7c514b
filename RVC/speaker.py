"""Speaker embeddings (resemblyzer's bundled d-vector encoder): for the quality bench and the reference checks."""
from __future__ import annotations

import importlib.metadata
import sys
import threading
import types
from functools import lru_cache

import numpy as np

_LOCK = threading.Lock()


def _pkg_resources_shim() -> None:
    """webrtcvad (under resemblyzer) still imports pkg_resources, which current setuptools no longer ships.

    It only asks it for its own version, so importlib.metadata answers in its place.
    """
    try:
        import pkg_resources  # noqa: F401 - imported to learn whether it exists
    except ImportError:
        shim = types.ModuleType("pkg_resources")
        shim.get_distribution = lambda name: types.SimpleNamespace(version=importlib.metadata.version(name))  # type: ignore[attr-defined]  # a stand-in module, given the one function webrtcvad calls
        sys.modules["pkg_resources"] = shim


@lru_cache(maxsize=1)
def encoder():
    _pkg_resources_shim()
    from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


def embed(samples: np.ndarray, rate: int = 16_000) -> np.ndarray:
    """One unit-length 256-d embedding of a whole utterance."""
    model = encoder()
    from resemblyzer import preprocess_wav

    wav = preprocess_wav(samples.astype(np.float32), source_sr=rate)
    with _LOCK:
        return model.embed_utterance(wav if wav.size else samples.astype(np.float32))


def centroid(embeddings: list[np.ndarray]) -> np.ndarray:
    c = np.mean(embeddings, axis=0)
    return c / np.linalg.norm(c)
