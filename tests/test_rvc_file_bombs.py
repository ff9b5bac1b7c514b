"""A small RVC file that claims a huge model or index is refused quickly, before the claim is allocated.

Each crafted file is a few hundred KB to about a MB; read the trusting way, each takes gigabytes (a 244 KB
`.pth` took 5.3 GB and 190 s). The refusals run in a fresh process whose peak memory is measured: the bound is
generous (importing torch alone is about 300 MB), far below what any of these claims would take.
"""
from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import EngineError
from RVC.rvc_model import load_checkpoint
from tests.voice_fixtures import tiny_rvc_config, write_tiny_rvc

ROOT = Path(__file__).resolve().parents[1]
PEAK_MB = 500
SECONDS = 20  # the goal is 5; generous for a loaded 2-core machine (the trusting reader took 190 s on the .pth)

# loads one file the way the voice worker does, in a fresh process, and says what happened and what it cost
_PROBE = """
import json, sys, time
from pathlib import Path
from core.errors import DoppelError
from RVC.engines.rvc import FeatureIndex
from RVC.rvc_model import load_checkpoint
path = Path(sys.argv[1])
t0 = time.monotonic()  # the check itself, not the imports
try:
    if path.suffix == ".pth":
        load_checkpoint(path)
    else:
        FeatureIndex(path)
    outcome = "accepted"
except DoppelError as exc:
    outcome = exc.message
# this process's own high-water mark (getrusage's would include the parent's, inherited through fork)
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - t0, "peak_mb": int(hwm.split()[1]) / 1024}))
"""


def _probe(path: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _PROBE, str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _refused_cheaply(path: Path, *needles: str) -> None:
    result = _probe(path)
    assert result["outcome"] != "accepted", result
    for needle in needles:
        assert needle in result["outcome"], result
    assert result["peak_mb"] < PEAK_MB, result
    assert result["seconds"] < SECONDS, result


def _rewrite(path: Path, change) -> Path:
    """The tiny model's checkpoint with `change(ckpt)` applied, saved again."""
    ckpt = torch.load(path, weights_only=True)
    change(ckpt)
    torch.save(ckpt, path)
    return path


def test_a_stretched_speaker_table_is_refused_before_it_is_built(tmp_path):
    # one real row of speaker embedding, viewed as 20 million (stride 0): a few bytes in the file, 640 MB as floats
    rows = 20_000_000
    path = _rewrite(write_tiny_rvc(tmp_path / "bomb.pth"),
                    lambda c: c["weight"].__setitem__("emb_g.weight", torch.zeros(1, 8).half().expand(rows, 8)))
    assert path.stat().st_size < 1_000_000
    _refused_cheaply(path, "bomb.pth", "claims more than the file holds", "emb_g.weight")


def test_the_same_bytes_counted_again_and_again_are_refused(tmp_path):
    def many_views(ckpt: dict) -> None:
        shared = torch.zeros(4096).half()
        for i in range(2000):  # each view fits its storage; together they claim 2000 times the file's bytes
            ckpt["weight"][f"enc_q.extra{i}"] = shared[:]
    path = _rewrite(write_tiny_rvc(tmp_path / "views.pth"), many_views)
    with pytest.raises(EngineError, match="claims more than the file holds"):
        load_checkpoint(path)


def test_a_config_past_any_rvc_model_is_refused_before_its_layers_are_built(tmp_path):
    cfg = tiny_rvc_config().to_list()
    cfg[4] = 4_000_000  # filter_channels: the attention layers' feed-forward width
    path = _rewrite(write_tiny_rvc(tmp_path / "wide.pth"), lambda c: c.__setitem__("config", cfg))
    with pytest.raises(EngineError, match="filter_channels 4000000"):
        load_checkpoint(path)
    cfg = tiny_rvc_config().to_list()
    cfg[6] = 100_000  # n_layers: a module list that long takes minutes to build
    path = _rewrite(write_tiny_rvc(tmp_path / "deep.pth"), lambda c: c.__setitem__("config", cfg))
    with pytest.raises(EngineError, match="n_layers 100000"):
        load_checkpoint(path)


def test_a_weight_norm_pair_that_broadcasts_past_its_weight_is_refused(tmp_path):
    def tall_g(ckpt: dict) -> None:
        key = next(k for k in ckpt["weight"] if k.endswith(".weight_g"))
        ckpt["weight"][key] = torch.ones(1, 1, 100_000).half()  # g * v would be 100,000 times v
    path = _rewrite(write_tiny_rvc(tmp_path / "g.pth"), tall_g)
    with pytest.raises(EngineError, match="does not match the v1/v2 layout") as refused:
        load_checkpoint(path)
    assert "does not fit weight_v" in refused.value.detail


def test_the_tiny_model_itself_still_loads(tmp_path):
    _net, info = load_checkpoint(write_tiny_rvc(tmp_path / "fine.pth"))
    assert (info.version, info.speakers) == ("v2", 2)


def _pq_bomb(path: Path, claimed: int) -> Path:
    """A product-quantized index of 768-d vectors at one byte each, claiming `claimed` of them (3 KB each read back)."""
    faiss = pytest.importorskip("faiss")
    index = faiss.IndexPQ(768, 1, 8)
    index.train(np.random.default_rng(0).standard_normal((2000, 768)).astype(np.float32))
    index.add(np.zeros((1, 768), np.float32))
    data = bytes(faiss.serialize_index(index))
    # kind, dimension, ntotal, two unused counts, is_trained, metric; then the quantizer (d, M, nbits, centroids)
    quantizer = 4 + 4 + 8 + 16 + 1 + 4
    centroids = struct.unpack_from("<Q", data, quantizer + 24)[0]
    codes = quantizer + 32 + 4 * centroids  # the codes vector: its count, then one byte per vector
    head = data[:8] + struct.pack("<q", claimed) + data[16:codes]
    path.write_bytes(head + struct.pack("<Q", claimed) + bytes(claimed) + data[codes + 8 + 1:])
    return path


def _ivf_claiming_more(path: Path) -> Path:
    """RVC's own kind (IVF, flat lists) whose header and list sizes claim far more vectors than it stores."""
    faiss = pytest.importorskip("faiss")
    vectors = np.random.default_rng(0).standard_normal((64, 768)).astype(np.float32)
    index = faiss.index_factory(768, "IVF1,Flat")
    index.train(vectors)
    index.add(vectors)
    data = bytearray(faiss.serialize_index(index))
    claimed = 5_000_000
    data[8:16] = struct.pack("<q", claimed)
    sizes_at = data.index(b"full") + 4 + 8  # the "full" layout: the count of sizes, then each list's size
    data[sizes_at:sizes_at + 8] = struct.pack("<Q", claimed)
    path.write_bytes(bytes(data))
    return path


def test_an_index_claiming_millions_of_vectors_is_refused_before_faiss_reads_it(tmp_path):
    pq = _pq_bomb(tmp_path / "pq.index", 300_000)  # about 1.1 MB; read back, 920 MB
    assert pq.stat().st_size < 1_500_000
    _refused_cheaply(pq, "pq.index", "not one RVC writes")
    _refused_cheaply(_ivf_claiming_more(tmp_path / "ivf.index"), "ivf.index", "claims 5,000,000 vectors")


def test_an_npy_whose_header_claims_more_than_the_file_is_refused(tmp_path):
    path = tmp_path / "features.npy"
    with open(path, "wb") as handle:  # 30 GB claimed by the header, 12 KB of numbers behind it
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f4", "fortran_order": False, "shape": (9_999_999, 768)})
        handle.write(bytes(4 * 768 * 4))
    _refused_cheaply(path, "features.npy", "could not be read")


def test_rvc_s_own_index_kinds_still_load(tmp_path):
    faiss = pytest.importorskip("faiss")
    from RVC.engines.rvc import FeatureIndex

    vectors = np.random.default_rng(1).standard_normal((300, 256)).astype(np.float32)
    for spec in ("IVF4,Flat", "Flat"):
        index = faiss.index_factory(256, spec)
        index.train(vectors)
        index.add(vectors)
        faiss.write_index(index, str(tmp_path / "v1.index"))
        assert FeatureIndex(tmp_path / "v1.index").vectors.shape == (300, 256)
    np.save(tmp_path / "v1.npy", vectors)
    assert FeatureIndex(tmp_path / "v1.npy").vectors.shape == (300, 256)
