"""Silero VAD over a live stream: the speech probability of each 32 ms chunk, as it arrives.

The ONNX model is the one faster-whisper ships (adapters.asr_whisper trims recordings with it); it is loaded
once per process and shared, while each stream keeps its own recurrent state and the tail of the last chunk.
A chunk costs about 0.05 ms on one core, so it runs on the event loop, where turn-taking needs its answer.
"""
from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

RATE = 16_000
CHUNK = 512  # samples at 16 kHz: what the model takes per step
_CONTEXT = 64  # samples of the previous chunk the model sees before each one


@functools.lru_cache(maxsize=1)
def _session() -> Any:  # an onnxruntime.InferenceSession
    import onnxruntime
    from faster_whisper.utils import get_assets_path

    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    options.log_severity_level = 4
    return onnxruntime.InferenceSession(os.path.join(get_assets_path(), "silero_vad_v6.onnx"),
                                        providers=["CPUExecutionProvider"], sess_options=options)


class SileroStream:
    """One stream's detector: feed consecutive 512-sample chunks of 16 kHz mono float32."""

    chunk_samples = CHUNK
    sample_rate = RATE

    def __init__(self) -> None:
        self._model = _session()
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, _CONTEXT), dtype=np.float32)

    def probability(self, chunk: np.ndarray) -> float:
        if chunk.shape != (CHUNK,):
            raise ValueError(f"Silero VAD takes chunks of {CHUNK} samples, not {chunk.shape}")
        x = chunk.astype(np.float32, copy=False)[None, :]
        out, self._h, self._c = self._model.run(None, {"input": np.concatenate([self._context, x], axis=1),
                                                       "h": self._h, "c": self._c})
        self._context = x[:, -_CONTEXT:]
        return float(np.asarray(out).ravel()[0])
