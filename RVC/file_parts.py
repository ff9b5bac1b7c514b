"""A file cut into numbered parts with SHA-256 sums, and put back together: what lets a file larger than a device call
carries or returns (16 MiB a file back, 64 MiB a call) travel, and a checkpoint too large for one file live in the
repository (bench/device_kit.py, RVC/lite_base.py)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def split(path: Path, parts_dir: Path, part_bytes: int, **extra) -> dict:
    """`path` cut into parts of at most `part_bytes` (named NAME.part-001 ...) and a manifest with every SHA-256."""
    if part_bytes <= 0:
        raise ValueError("a part must hold at least one byte")
    parts_dir.mkdir(parents=True, exist_ok=True)
    for old in parts_dir.glob(f"{path.name}.part-*"):
        old.unlink()
    parts = []
    with path.open("rb") as f:
        for i in range(1, 10_000):
            block = f.read(part_bytes)
            if not block:
                break
            part = parts_dir / f"{path.name}.part-{i:03d}"
            part.write_bytes(block)
            parts.append({"name": part.name, "bytes": len(block), "sha256": hashlib.sha256(block).hexdigest()})
    manifest = {"name": path.name, "bytes": path.stat().st_size, "sha256": sha256(path), "parts": parts, **extra}
    (parts_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def join(parts_dir: Path, out_dir: Path) -> Path:
    """The parts put back together, each and the whole checked against the manifest; a missing or changed part is named."""
    manifest = json.loads((parts_dir / "manifest.json").read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / manifest["name"]
    whole = hashlib.sha256()
    with out.open("wb") as f:
        for part in manifest["parts"]:
            path = parts_dir / part["name"]
            if not path.exists():
                raise FileNotFoundError(f"part {part['name']} has not arrived")
            block = path.read_bytes()
            if hashlib.sha256(block).hexdigest() != part["sha256"]:
                raise ValueError(f"part {part['name']} is damaged")
            whole.update(block)
            f.write(block)
    if whole.hexdigest() != manifest["sha256"]:
        raise ValueError(f"{manifest['name']} joined does not match its checksum")
    return out


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Join a file's parts back (e.g. a base trained on the GPU machine).")
    ap.add_argument("parts", help="the folder with manifest.json and NAME.part-NNN")
    ap.add_argument("out_dir")
    args = ap.parse_args()
    print(join(Path(args.parts), Path(args.out_dir)))


if __name__ == "__main__":
    main()
