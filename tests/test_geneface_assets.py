"""`doppel geneface fetch-assets`: GeneFace++'s run-time downloads fetched once, checked, never fetched twice.

The files come from a mirror on 127.0.0.1 (`--mirror`), serving the same relative paths as the real
sources; the asset list is narrowed to small stand-ins with and without published hashes.
"""
from __future__ import annotations

import hashlib
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.cli import main
from geneface import assets


class Mirror:
    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        mirror = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                mirror.requests.append(self.path)
                super().do_GET()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    served = tmp_path / "served"
    weights, config = b"\x00weights" * 5000, b'{"model_type": "hubert"}'
    (served / "torch/hub/checkpoints").mkdir(parents=True)
    (served / "torch/hub/checkpoints/net-x.pth").write_bytes(weights)
    (served / "huggingface").mkdir()
    (served / "huggingface/config.json").write_bytes(config)
    monkeypatch.setattr(assets, "DOWNLOADS", [
        # a published hash prefix, as torchvision puts in its file names
        assets.Asset("torch/hub/checkpoints/net-x.pth", "unused", hashlib.sha256(weights).hexdigest()[:8]),
        assets.Asset("huggingface/config.json", "unused"),  # none published: recorded on first fetch
    ])
    m = Mirror(served)
    yield m, served
    m.close()


def test_fetch_checks_records_and_never_fetches_twice(tmp_path, mirror, capsys):
    m, _served = mirror
    root = tmp_path / "assets"
    assert main(["geneface", "fetch-assets", "--dir", str(root), "--mirror", m.url]) == 1  # BFM still to copy by hand
    out = capsys.readouterr().out
    assert "2 file(s) fetched" in out and "BFM/ and audio2motion_vae/" in out
    assert sorted(m.requests) == ["/huggingface/config.json", "/torch/hub/checkpoints/net-x.pth"]
    sums = assets.read_sums(root)
    assert sums["huggingface/config.json"] == assets.sha256(root / "huggingface/config.json")
    assert (root / assets.HUBERT_CACHE / "refs" / "main").read_text() == assets.HUBERT_REVISION

    for folder, names in assets.BY_HAND.items():
        (root / folder).mkdir()
        for name in names:
            (root / folder / name.replace("*", "1")).write_bytes(b"x")
    assert main(["geneface", "fetch-assets", "--dir", str(root), "--mirror", m.url]) == 0
    assert "0 file(s) fetched" in capsys.readouterr().out
    assert len(m.requests) == 2  # nothing fetched twice
    assets.check(root)

    # a file changed after it was fetched is refused, by the hash recorded at its first fetch
    (root / "huggingface/config.json").write_bytes(b"{}")
    with pytest.raises(assets.AssetError, match="does not match"):
        assets.fetch(root, mirror=m.url, say=lambda _: None)


def test_a_download_that_does_not_match_its_published_hash_is_refused_and_not_kept(tmp_path, mirror):
    m, served = mirror
    (served / "torch/hub/checkpoints/net-x.pth").write_bytes(b"tampered")
    with pytest.raises(assets.AssetError, match=r"net-x\.pth"):
        assets.fetch(tmp_path / "assets", mirror=m.url, say=lambda _: None)
    assert not (tmp_path / "assets/torch/hub/checkpoints/net-x.pth").exists()
    assert not list((tmp_path / "assets").rglob("*.part"))


def test_an_unreachable_source_is_one_clear_line(tmp_path, mirror, capsys):
    m, _ = mirror
    m.close()
    assert main(["geneface", "fetch-assets", "--dir", str(tmp_path / "a"), "--mirror", m.url]) == 2
    assert capsys.readouterr().err.startswith("doppel: ")
