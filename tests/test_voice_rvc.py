"""The rvc engine on tiny random-weight models written in the official checkpoint layouts."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from core.errors import EngineError
from RVC.engines.rvc import FeatureIndex, RvcEngine, coarse_f0
from RVC.hubert import load_hubert
from RVC.rvc_model import load_checkpoint
from RVC.safe_load import load_weights
from tests.voice_fixtures import tiny_rvc_config, write_tiny_hubert, write_tiny_rvc


def _voiced(seconds: float = 2.0, f0: float = 140.0, rate: int = 22050) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * f0 * t
    return (0.3 * np.sin(phase) + 0.15 * np.sin(2 * phase) + 0.1 * np.sin(3 * phase)).astype(np.float32)


@pytest.fixture
def models(tmp_path):
    write_tiny_rvc(tmp_path / "tiny.pth")
    write_tiny_hubert(tmp_path / "hubert_base.pt")
    return tmp_path


def test_checkpoint_layout_loads_with_weight_norm_folded(models):
    net, info = load_checkpoint(models / "tiny.pth")
    ckpt = load_weights(models / "tiny.pth")
    assert ckpt["version"] == "v2" and any(k.endswith(".weight_g") for k in ckpt["weight"])
    assert net.cfg == tiny_rvc_config() and net.cfg.sample_rate == 40000
    assert (info.version, info.sample_rate, info.speakers) == ("v2", 40000, 2)
    # the folded generator weight equals g * v / |v|
    g, v = ckpt["weight"]["dec.ups.0.weight_g"].float(), ckpt["weight"]["dec.ups.0.weight_v"].float()
    expected = g * v / v.norm(dim=(1, 2), keepdim=True)
    assert torch.allclose(net.dec.ups[0].weight, expected, atol=1e-3)


def test_fairseq_hubert_loads_without_fairseq_and_keeps_the_frame_rate(models):
    hubert = load_hubert(models / "hubert_base.pt")
    feats = hubert(torch.zeros(1, 16000))
    assert feats.shape == (1, 49, 768)  # 20 ms frames, the conv stack's edges trimmed


@pytest.mark.slow  # the whole RVC pipeline, harvest F0 included
def test_convert_shapes_rate_and_speed(models):
    engine = RvcEngine(models)
    audio = _voiced(2.0)
    engine.convert(audio, 22050, {"model": "tiny.pth"})  # loads once
    t0 = time.perf_counter()
    out, rate = engine.convert(audio, 22050, {"model": "tiny.pth"})
    took = time.perf_counter() - t0
    assert rate == 40000 and out.dtype == np.float32
    # one second of mirrored context each side; HuBERT's frames (2 per 320 samples, edges trimmed) bound the length
    padded = 2 * 16000 + 2 * 16000
    frames = min(padded // 160, 2 * ((padded - 400) // 320 + 1))
    assert out.shape == (frames * 400 - 2 * 40000,)  # 400 samples a frame at 40 kHz, the context trimmed off
    assert np.isfinite(out).all() and 0 < np.abs(out).max() <= 1
    # a wide bound (a busy machine is slower): what it catches is work done again per call, such as a model reloaded
    assert took < 30.0, f"a tiny model took {took:.1f} s for 2 s of speech"


@pytest.mark.slow  # the whole RVC pipeline, harvest F0 included
def test_pitch_shift_moves_the_excitation_f0(models):
    engine = RvcEngine(models)
    net = engine.model("tiny.pth")
    seen: list[torch.Tensor] = []
    hook = net.dec.m_source.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    try:
        engine.convert(_voiced(), 22050, {"model": "tiny.pth", "pitch_shift": 0})
        engine.convert(_voiced(), 22050, {"model": "tiny.pth", "pitch_shift": 12})
    finally:
        hook.remove()
    base, up = seen[0][0].numpy(), seen[1][0].numpy()
    voiced = (base > 0) & (up > 0)
    assert voiced.mean() > 0.8 and abs(np.median(base[voiced]) - 140) < 5
    assert np.allclose(up[voiced] / base[voiced], 2.0, rtol=1e-3)
    assert coarse_f0(np.array([0.0, 140.0, 280.0])).tolist()[0] == 1


def test_a_corrupt_model_is_a_clear_error(models):
    (models / "broken.pth").write_bytes(b"this is not a checkpoint")
    engine = RvcEngine(models)
    with pytest.raises(EngineError, match=r"broken\.pth"):
        engine.convert(_voiced(), 22050, {"model": "broken.pth"})
    torch.save({"weight": {"x": torch.zeros(1)}, "config": [1] * 18, "version": "v2", "f0": 1}, models / "wrong.pth")
    with pytest.raises(EngineError, match="v2 layout"):
        engine.convert(_voiced(), 22050, {"model": "wrong.pth"})
    with pytest.raises(EngineError, match=r"missing\.pth"):
        engine.convert(_voiced(), 22050, {"model": "missing.pth"})
    out, _ = engine.convert(_voiced(), 22050, {"model": "tiny.pth"})  # the engine is still usable
    assert out.size


def test_index_blend_without_faiss(models):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(200, 768)).astype(np.float32)
    np.save(models / "voice.npy", vectors)
    index = FeatureIndex(models / "voice.npy")
    query = vectors[:5] + 0.01 * rng.normal(size=(5, 768)).astype(np.float32)
    assert np.allclose(index.blend(query, 1.0), vectors[:5], atol=0.05)  # each frame pulled onto its neighbour
    assert np.allclose(index.blend(query, 0.0), query)
    out, _ = RvcEngine(models).convert(_voiced(), 22050, {"model": "tiny.pth", "index": "voice.npy", "index_rate": 0.5})
    assert out.size


def test_a_v1_model_reads_layer_nine_through_the_projection(tmp_path):
    write_tiny_rvc(tmp_path / "old.pth", version="v1")
    write_tiny_hubert(tmp_path / "hubert_base.pt", final_proj=True)
    write_tiny_hubert(tmp_path / "no_proj.pt")
    net, info = load_checkpoint(tmp_path / "old.pth")
    assert (info.version, net.enc_p.emb_phone.in_features) == ("v1", 256)
    out, rate = RvcEngine(tmp_path).convert(_voiced(1.0), 22050, {"model": "old.pth"})
    assert rate == 40000 and out.size and np.isfinite(out).all()
    with pytest.raises(EngineError, match="final projection"):
        RvcEngine(tmp_path).convert(_voiced(1.0), 22050, {"model": "old.pth", "content_model": "no_proj.pt"})
    # a file that calls itself v2 but carries v1's content layer is refused, not guessed at
    ckpt = load_weights(tmp_path / "old.pth")
    torch.save({**ckpt, "version": "v2"}, tmp_path / "mislabelled.pth")
    with pytest.raises(EngineError, match="says it is an RVC v2 model"):
        load_checkpoint(tmp_path / "mislabelled.pth")


def test_speaker_and_settings_are_checked_with_clear_errors(models):
    from core.errors import BadInput

    engine = RvcEngine(models)
    with pytest.raises(BadInput, match="speaker ids 0 to 1; 2 is not one of them"):
        engine.convert(_voiced(), 22050, {"model": "tiny.pth", "speaker_id": 2})
    with pytest.raises(BadInput, match="index_rate must be between 0 and 1"):
        engine.convert(_voiced(), 22050, {"model": "tiny.pth", "index_rate": 1.5})
    with pytest.raises(BadInput, match="needs a 'model'"):
        engine.convert(_voiced(), 22050, {})
