"""The device kit (bench/device_kit.py): what is cut into parts comes back whole, a damaged or missing part is named,
and the call plan carries each part once and stays within what a device call accepts."""
import json
import os
import tarfile

import pytest

from bench.device_kit import bench_commands, join, pack, plan, receive, split


def test_parts_join_back_into_the_same_bytes(tmp_path):
    blob = os.urandom(1_000_003)
    src = tmp_path / "kit.tar"
    src.write_bytes(blob)
    manifest = split(src, tmp_path / "parts", 300_000, light=True)
    sizes = [p["bytes"] for p in manifest["parts"]]
    assert sizes == [300_000, 300_000, 300_000, 100_003]
    assert all((tmp_path / "parts" / p["name"]).stat().st_size <= 300_000 for p in manifest["parts"])
    out = join(tmp_path / "parts", tmp_path / "joined")
    assert out.read_bytes() == blob
    assert json.loads((tmp_path / "parts" / "manifest.json").read_text())["light"] is True


def test_a_damaged_or_missing_part_is_named(tmp_path):
    src = tmp_path / "kit.tar"
    src.write_bytes(os.urandom(50_000))
    manifest = split(src, tmp_path / "parts", 20_000)
    second = tmp_path / "parts" / manifest["parts"][1]["name"]
    data = bytearray(second.read_bytes())
    data[7] ^= 1
    second.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=manifest["parts"][1]["name"]):
        join(tmp_path / "parts", tmp_path / "joined")
    second.unlink()
    with pytest.raises(FileNotFoundError, match=manifest["parts"][1]["name"]):
        join(tmp_path / "parts", tmp_path / "joined")


def test_a_second_split_leaves_no_stale_parts(tmp_path):
    src = tmp_path / "kit.tar"
    src.write_bytes(os.urandom(90_000))
    split(src, tmp_path / "parts", 10_000)
    src.write_bytes(os.urandom(25_000))
    manifest = split(src, tmp_path / "parts", 10_000)
    assert sorted(p.name for p in (tmp_path / "parts").glob("kit.tar.part-*")) == [p["name"] for p in manifest["parts"]]
    assert join(tmp_path / "parts", tmp_path / "joined").read_bytes() == src.read_bytes()


def test_packed_files_unpack_under_their_kit_paths(tmp_path):
    (tmp_path / "a.npz").write_bytes(b"features")
    wheel = tmp_path / "x-1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel")
    tar_path = pack([(tmp_path / "a.npz", "var/new-speakers/it/dataset.npz")], [wheel], tmp_path / "kit.tar",
                    ["var/debian-speech/pkg/.unpacked"])
    with tarfile.open(tar_path) as tar:
        names = set(tar.getnames())
    assert names == {"var/new-speakers/it/dataset.npz", "wheels/x-1.0-py3-none-any.whl", "var/debian-speech/pkg/.unpacked"}


@pytest.mark.parametrize("light", [True, False])
def test_the_plan_carries_every_part_once_then_runs_the_bench(tmp_path, light):
    src = tmp_path / "kit.tar"
    src.write_bytes(os.urandom(70_000))
    manifest = split(src, tmp_path / "parts", 30_000, light=light)
    recipes = ["gpu"] if light else ["gpu", "gpu-frozen"]
    lines = plan(manifest, ".device-kit/parts", bench_commands(light, recipes, 480), light)
    calls = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(calls) == len(manifest["parts"]) + (1 if light else 2)
    carried = [c["carry"][0] for c in calls[: len(manifest["parts"])]]
    assert carried == [f".device-kit/parts/{p['name']}" for p in manifest["parts"]]
    bench = [c["command"] for c in calls[len(manifest["parts"]):]]
    assert all(len(cmd) <= 2000 and "device_kit.py install" in cmd for cmd in bench)
    assert "--phase train" in bench[0] and ("--phase score" in bench[-1]) == (not light)
    assert all(("--no-wheels" in cmd) == light for cmd in bench)
    assert ("cp $f $OUT/" in bench[0]) == light  # artifacts come back only where they are scored here
    assert all(c["timeout_s"] <= 600 for c in calls)
    assert any("sparse-checkout set" in line and "!/RVC/base/" in line for line in lines)


def test_a_light_kit_refuses_more_artifacts_than_a_call_returns():
    with pytest.raises(ValueError, match="one recipe"):
        bench_commands(True, ["gpu", "gpu-frozen"], 480)


def test_received_artifacts_go_back_to_their_speakers(tmp_path):
    back, work = tmp_path / "back", tmp_path / "work"
    back.mkdir()
    for lang in ("it", "es"):
        (back / f"{lang}-gpu-cuda-480s.lite.pt").write_bytes(lang.encode())
    (back / "run.log").write_text("log")
    (back / "training.jsonl").write_text('{"lang": "it"}\n{"lang": "es"}\n')
    placed = receive(back, work)
    assert sorted(p.relative_to(work).as_posix() for p in placed) == ["es/gpu-cuda-480s.lite.pt", "it/gpu-cuda-480s.lite.pt"]
    assert (work / "it" / "gpu-cuda-480s.lite.pt").read_bytes() == b"it"
    receive(back, work)  # twice: the log's lines are not repeated
    assert (work / "training.jsonl").read_text().splitlines() == ['{"lang": "it"}', '{"lang": "es"}']
