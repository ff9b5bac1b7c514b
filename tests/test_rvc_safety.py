"""Weights files from third parties are read without running anything inside them.

Each crafted file carries a pickle that, if unpickled the ordinary way, writes a marker file; the loaders must
refuse the file (or, where real weights sit beside the payload, keep only the tensors) and the marker must
never appear.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from core.errors import EngineError
from RVC.engines.rvc import FeatureIndex
from RVC.hubert import load_hubert
from RVC.rvc_model import load_checkpoint
from RVC.safe_load import UnsafeWeights, load_tensor_dict
from tests.voice_fixtures import write_tiny_hubert


class Payload:
    """Unpickled the ordinary way, this runs `exec` on code that writes the marker."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


def test_the_payload_really_runs_under_plain_pickle(tmp_path):
    """So the tests below can fail: unpickled the ordinary way, the payload does write its marker."""
    marker = tmp_path / "proof"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "marker"
    yield path
    assert not path.exists(), "code inside a weights file ran"


def test_a_crafted_rvc_model_is_refused(tmp_path, marker):
    zipped = tmp_path / "zip.pth"
    torch.save({"weight": {"x": torch.zeros(2)}, "config": Payload(marker), "version": "v2", "f0": 1}, zipped)
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps(Payload(marker), protocol=2))  # torch reads a non-zip file's header with pickle
    for path in (zipped, legacy):
        with pytest.raises(EngineError, match="could not be read safely"):
            load_checkpoint(path)


def test_a_crafted_hubert_is_refused_or_read_for_its_tensors_only(tmp_path, marker):
    only_payload = tmp_path / "hubert_base.pt"
    torch.save({"model": Payload(marker), "cfg": Payload(marker)}, only_payload)
    with pytest.raises(EngineError, match="content encoder"):
        load_hubert(only_payload)
    legacy = tmp_path / "legacy_hubert.pt"
    legacy.write_bytes(pickle.dumps(Payload(marker), protocol=2))
    with pytest.raises(EngineError, match="content encoder"):
        load_hubert(legacy)

    # real weights with the payload where fairseq keeps its config: the weights load, the payload stays inert
    good = write_tiny_hubert(tmp_path / "good.pt")
    state = load_tensor_dict(good)
    torch.save({"model": state, "cfg": Payload(marker), "args": Payload(marker)}, tmp_path / "mixed.pt")
    hubert = load_hubert(tmp_path / "mixed.pt")
    assert hubert(torch.zeros(1, 16000)).shape == (1, 49, 768)


def test_dangerous_names_are_never_resolved(tmp_path, marker):
    """Not even torch's or numpy's own functions beyond the tensor rebuilders (numpy.testing can exec a string)."""
    class NumpyExec:
        def __reduce__(self):
            from numpy.testing._private.utils import runstring

            return runstring, (f"open({str(marker)!r}, 'w').write('pwned')", {})

    path = tmp_path / "numpy.pt"
    path.write_bytes(pickle.dumps({"model": NumpyExec()}, protocol=2))
    with pytest.raises(UnsafeWeights):
        load_tensor_dict(path)


def test_a_crafted_index_is_refused(tmp_path, marker):
    pickled_index = tmp_path / "voice.index"
    pickled_index.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(EngineError, match="could not be read"):
        FeatureIndex(pickled_index)
    pickled_npy = tmp_path / "voice.npy"
    np.save(pickled_npy, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(EngineError, match="could not be read"):
        FeatureIndex(pickled_npy)
