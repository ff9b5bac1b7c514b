"""Running a trained lite generator: the torch module itself, or the same graph exported to ONNX for onnxruntime.

Why two: under torch, oneDNN builds its convolution kernels for each input length it meets (about 65 ms for
the lite generator on two cores), and every sentence has a length of its own, so a worker that lives for
hours pays it on almost every sentence. onnxruntime's kernels do not depend on the length, and it runs the
graph as fast as torch runs a length it has seen. Exporting takes about a second, so it pays off in the
long-lived worker, not in a process that converts one sentence and exits (RVC/oneshot.py keeps torch).

The export is generic over the module: whatever `net(content [1, T/2, D], f0 [1, T]) -> wave [1, T * hop]`
is loaded is traced once, then checked against torch at two other lengths before it is used; a graph that
fails the check (a length baked in by tracing, an operator onnxruntime lacks) is dropped for torch.
The artifact (.lite.pt) stays the only thing on disk.
"""
from __future__ import annotations

import io
import logging
import warnings
from contextlib import contextmanager
from typing import Iterator, Protocol

import numpy as np
import torch

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnx", "torch")
# Lengths (content frames) to trace at and to check at: unlike each other, so a length the tracer baked in shows up.
_TRACE_FRAMES = 40
_CHECK_FRAMES = (23, 57)
# The generator's excitation carries a little random noise even where voiced, so two runs never agree exactly;
# a graph that is really the same stays far below this, a broken one (wrong length, wrong ops) far above.
_CHECK_TOLERANCE = 0.05


class Generator(Protocol):
    runtime: str

    def __call__(self, content: np.ndarray, f0: np.ndarray) -> np.ndarray:
        """content [T/2, D] float32 at 50 Hz, f0 [T] Hz at 100 Hz → waveform [T * hop] float32."""
        ...


class TorchGenerator:
    runtime = "torch"

    def __init__(self, net: torch.nn.Module, threads: int) -> None:
        self.net = net.eval()
        self.threads = threads

    def __call__(self, content: np.ndarray, f0: np.ndarray) -> np.ndarray:
        torch.set_num_threads(self.threads)
        with torch.inference_mode():
            out = self.net(torch.from_numpy(np.ascontiguousarray(content, dtype=np.float32))[None],
                           torch.from_numpy(np.ascontiguousarray(f0, dtype=np.float32))[None])
        return out[0].numpy()


class OnnxGenerator:
    runtime = "onnx"

    def __init__(self, model: bytes, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads sleep instead of spinning: the TTS and the content encoder run between two generator
        # calls on the same two cores, and spinning threads slowed the whole sentence (1.9 s → 1.7 s for six).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}  # the exporter drops an input the graph never reads

    def __call__(self, content: np.ndarray, f0: np.ndarray) -> np.ndarray:
        feed = {"content": np.ascontiguousarray(content, dtype=np.float32)[None],
                "f0": np.ascontiguousarray(f0, dtype=np.float32)[None]}
        return self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0][0]


def export_onnx(net: torch.nn.Module) -> bytes:
    """The module's forward as an ONNX graph with the time axes left free."""
    dims = _content_dims(net)
    content = torch.zeros(1, _TRACE_FRAMES, dims)
    f0 = _probe_f0(2 * _TRACE_FRAMES)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python-side shape arithmetic: the check below decides
        # torch writes to a file object as well as a path; its annotations name paths only
        torch.onnx.export(net.eval(), (content, f0), buf, dynamo=False, input_names=["content", "f0"], output_names=["wave"],  # type: ignore[arg-type]
                          dynamic_axes={"content": {1: "frames50"}, "f0": {1: "frames"}, "wave": {1: "samples"}},
                          opset_version=17)
    return buf.getvalue()


def check(candidate: Generator, reference: Generator, dims: int, frames: tuple[int, ...] = _CHECK_FRAMES) -> float:
    """The largest relative RMS difference between two generators over a few lengths (inf when a length differs)."""
    rng = np.random.default_rng(7)
    worst = 0.0
    for n in frames:
        content = rng.normal(0, 1, (n, dims)).astype(np.float32)
        f0 = _probe_f0(2 * n).numpy()[0]
        a, b = candidate(content, f0), reference(content, f0)
        if a.shape != b.shape or not np.isfinite(a).all():
            return float("inf")
        worst = max(worst, float(np.sqrt(np.mean((a - b) ** 2) / max(np.mean(b ** 2), 1e-12))))
    return worst


def build_generator(net: torch.nn.Module, runtime: str = "auto", threads: int = 2) -> Generator:
    """runtime "torch": the module as is; "onnx": exported, or an error; "auto": exported when that works, else torch."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown lite runtime '{runtime}' (one of {', '.join(RUNTIMES)})")
    if runtime == "torch":
        return TorchGenerator(net, threads)
    try:
        # torch on one thread for the trace and the check: they are short, and a two-thread OpenMP pool crawls
        # while another process holds a core (measured with one core busy: 12 s instead of 0.9 s)
        with _torch_threads(1):
            exported = OnnxGenerator(export_onnx(net), threads)
            error = check(exported, TorchGenerator(net, 1), _content_dims(net))
        if error > _CHECK_TOLERANCE:
            raise RuntimeError(f"the exported graph differs from torch by {error:.3g}")
        return exported
    except Exception as exc:
        if runtime == "onnx":
            raise
        log.warning("lite generator stays on torch: %r", exc)
        return TorchGenerator(net, threads)


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _content_dims(net: torch.nn.Module) -> int:
    cfg = getattr(net, "cfg", None)
    if cfg is not None and hasattr(cfg, "content_dims"):
        return int(cfg.content_dims)
    first = next(m for m in net.modules() if isinstance(m, torch.nn.Conv1d))  # the first layer reads the content
    return first.in_channels


def _probe_f0(frames: int) -> torch.Tensor:
    """A gliding, fully voiced contour: where unvoiced, the excitation is mostly noise and would blur the check."""
    t = torch.arange(frames, dtype=torch.float32)
    return (160 + 40 * torch.sin(t / 9))[None]
