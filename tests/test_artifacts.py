"""The artifact store a cluster's training jobs keep their files in (storage/artifacts.py), on a folder named by path
and by file:// URL: a node pushes only what changed, a node resuming pulls the job's files back whole."""
from __future__ import annotations

import pytest

from storage.artifacts import ArtifactStore


@pytest.mark.parametrize("url", [False, True])
def test_a_job_folder_goes_to_the_store_and_comes_back_on_another_node(tmp_path, url):
    root = f"file://{tmp_path / 'store'}" if url else str(tmp_path / "store")
    node_a, node_b = tmp_path / "a", tmp_path / "b"
    node_a.mkdir()
    (node_a / "checkpoint.pt").write_bytes(b"step 5")
    (node_a / "dataset.npz").write_bytes(b"features")
    (node_a / "checkpoint.pt.tmp").write_bytes(b"half written")
    store = ArtifactStore(root)
    store.push(7, node_a)
    stored = tmp_path / "store" / "jobs" / "7"
    assert sorted(p.name for p in stored.iterdir()) == ["checkpoint.pt", "dataset.npz"]

    # only what changed moves again: a copy changed behind the store's back stays as it is
    (stored / "dataset.npz").write_bytes(b"not pushed again")
    (node_a / "checkpoint.pt").write_bytes(b"step 10")
    store.push(7, node_a)
    assert (stored / "checkpoint.pt").read_bytes() == b"step 10"
    assert (stored / "dataset.npz").read_bytes() == b"not pushed again"

    (node_b / "stale").mkdir(parents=True)  # a dead attempt's leftovers on this node are cleared first
    fresh = ArtifactStore(root)
    assert fresh.pull(7, node_b) == ["checkpoint.pt", "dataset.npz"]
    assert (node_b / "checkpoint.pt").read_bytes() == b"step 10" and not (node_b / "stale").exists()
    assert fresh.holds(7, f"{root}/jobs/7/checkpoint.pt") and not fresh.holds(8, f"{root}/jobs/7/checkpoint.pt")
    assert fresh.pull(8, tmp_path / "c") == []

    fresh.remove(7)
    assert not stored.exists()


def test_an_unknown_scheme_is_refused_at_once():
    with pytest.raises(ValueError, match="s4"):
        ArtifactStore("s4://bucket/doppel")
