"""The lite generator exported to onnxruntime computes what the torch module computes, at any length."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from RVC.lite_model import LiteConfig, LiteNet
from RVC.lite_runtime import OnnxGenerator, TorchGenerator, build_generator, check, export_onnx


def _tiny_net(seed: int = 0) -> LiteNet:
    torch.manual_seed(seed)
    net = LiteNet(LiteConfig.tiny()).eval()
    with torch.no_grad():  # away from the initial weights, so every layer matters to the output
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


def _quiet(net: torch.nn.Module) -> torch.nn.Module:
    """Voiced excitation without its small noise: the output is then a pure function of the input."""
    for m in net.modules():
        if hasattr(m, "noise_std"):
            m.noise_std = 0.0
    return net


def _inputs(frames50: int, dims: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(2 * frames50)
    return rng.normal(0, 1, (frames50, dims)).astype(np.float32), (140 + 60 * np.sin(t / 7)).astype(np.float32)


@pytest.mark.parametrize("frames50", [9, 40, 131])
def test_exported_generator_matches_torch_at_lengths_it_was_not_traced_at(frames50):
    net = _quiet(_tiny_net())
    onnx, torch_gen = OnnxGenerator(export_onnx(net), threads=1), TorchGenerator(net, threads=1)
    content, f0 = _inputs(frames50, net.cfg.content_dims, frames50)
    a, b = onnx(content, f0), torch_gen(content, f0)
    assert a.shape == b.shape == (2 * frames50 * 160,)
    assert np.abs(b).max() > 1e-3  # a silent output would match anything
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=0)


def test_auto_exports_and_the_check_passes_with_the_noise_on():
    net = _tiny_net(1)
    gen = build_generator(net, "auto", threads=1)
    assert gen.runtime == "onnx"
    assert check(gen, TorchGenerator(net, 1), net.cfg.content_dims) < 0.05


class _BakesItsLength(torch.nn.Module):
    """Sizes its output from a Python number: the tracer freezes it, so the graph is right at one length only."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = torch.nn.Conv1d(8, 8, 1)

    def forward(self, content: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
        frames = int(np.asarray(f0.shape[1]))
        base = torch.from_numpy(np.linspace(0, 1, frames * 160, dtype=np.float32))[None]
        return base * self.inp(content.transpose(1, 2)).mean() * f0.mean()


def test_a_graph_that_only_works_at_its_traced_length_is_refused():
    net = _BakesItsLength().eval()
    with pytest.raises(RuntimeError, match="differs"):
        build_generator(net, "onnx", threads=1)
    gen = build_generator(net, "auto", threads=1)
    assert gen.runtime == "torch"
    content, f0 = _inputs(17, 8, 0)
    assert gen(content, f0).shape == (2 * 17 * 160,)


def test_unknown_runtime_is_refused():
    with pytest.raises(ValueError, match="runtime"):
        build_generator(_tiny_net(), "tensorrt")


@pytest.fixture(scope="module")
def content(tmp_path_factory):
    from RVC.features import bundled_content

    return bundled_content(tmp_path_factory.mktemp("cache"), threads=2)


@pytest.mark.slow  # loads the content encoder
def test_lite_engine_runs_a_saved_voice_on_onnxruntime_as_torch_would(content, tmp_path):
    from RVC.engines.lite import LiteEngine
    from RVC.lite_train import export

    net = _tiny_net(2)
    rng = np.random.default_rng(3)
    basis = np.linalg.qr(rng.normal(size=(content.dims, net.cfg.content_dims)))[0]
    path = export(net, {"pca_mean": np.zeros(content.dims), "pca_basis": basis, "f0_stats": (np.log(200.0), 0.2)},
                  tmp_path / "lite-v1.pt", steps=0, seconds=0.0)
    t = np.arange(int(1.5 * 16000)) / 16000
    voiced = sum(0.2 / h * np.sin(2 * np.pi * 140 * h * t) for h in range(1, 6)).astype(np.float32)

    onnx_engine, torch_engine = LiteEngine(content, runtime="auto"), LiteEngine(content, runtime="torch")
    a, rate = onnx_engine.convert(voiced, 16000, {"artifact": str(path)})
    b, _ = torch_engine.convert(voiced, 16000, {"artifact": str(path)})
    assert onnx_engine.runtimes() == ["onnx"] and torch_engine.runtimes() == ["torch"]
    assert rate == 16000 and a.shape == b.shape == (len(voiced) // 320 * 320,)
    assert np.abs(b).max() > 1e-3
    # voiced throughout, so only the excitation's faint noise tells the two apart
    assert np.sqrt(np.mean((a - b) ** 2) / np.mean(b ** 2)) < 0.05
