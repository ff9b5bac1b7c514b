"""Reading weights files that third parties made, without running anything inside them.

A `.pth`/`.pt` file is a pickle, and unpickling can call any function the file names. Every weights file
the voice worker opens comes through here:
- `torch.load(weights_only=True)` first: torch's own restricted unpickler, enough for RVC checkpoints and
  our own artifacts;
- fairseq checkpoints (the `hubert_base.pt` RVC distributions ship) also pickle their config objects, which
  that refuses. For those a second unpickler resolves only the handful of functions torch needs to rebuild
  tensors; every other name in the file becomes an inert placeholder that ignores its arguments, so a
  crafted file gets placeholders, never a call to what it named. Only the tensors are kept.

A small file can still claim a huge tensor: a stride-0 view (what `expand` makes) of a few bytes reads back
as millions of rows, and whatever is built to its size takes gigabytes. `load_weights` therefore maps the file
instead of reading it and refuses any tensor that claims more bytes than its storage holds, and any file whose
tensors add up to more than the file itself, before anything the size of a claim is allocated.
"""
from __future__ import annotations

import pickle
import types
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

# what rebuilding tensors and plain containers needs, by exact (module, name): nothing that can reach the system
_REBUILDERS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch", "Size"),
    ("torch", "device"),
    ("_codecs", "encode"),  # how protocol 2 writes bytes
}


class UnsafeWeights(ValueError):
    """The file holds no readable tensors (damaged, not a checkpoint, or something crafted)."""


class OversizedClaim(UnsafeWeights):
    """The file claims tensors larger than the bytes it holds."""


class _Inert:
    """Stands for any class or function a checkpoint names beyond the rebuilders: built from nothing, does nothing."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        pass

    def __call__(self, *args, **kwargs) -> "_Inert":
        return _Inert()

    def append(self, item) -> None:
        pass

    def extend(self, items) -> None:
        pass

    def __setitem__(self, key, value) -> None:
        pass


class _TensorsOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _REBUILDERS:
            return super().find_class(module, name)
        return _Inert


def _load(file, **kwargs):
    # torch reads a legacy (non-zip) file's header with pickle_module.load: it must be restricted too
    return _TensorsOnlyUnpickler(file, **kwargs).load()


_TENSORS_ONLY = types.SimpleNamespace(Unpickler=_TensorsOnlyUnpickler, load=_load, __name__="doppel_tensors_only")


# the pickle of an RVC checkpoint is a few tens of KB (names, shapes, the config); anything far past it is not one
MAX_PICKLE_BYTES = 8 << 20


def load_weights(path: Path):
    """The checkpoint's object, read by torch's weights-only unpickler from the mapped file, every tensor backed
    by bytes the file really holds; raises UnsafeWeights when it can't be."""
    path = Path(path)
    _check_archive(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise UnsafeWeights(f"{path.name}: {exc.__class__.__name__}: {str(exc)[:300]}") from None
    _check_claims(path, obj)
    return obj


def _check_archive(path: Path) -> None:
    """torch's zip layout, every record stored as it is (torch never compresses, and a compressed record can
    unpack to far more than the file), inside the file, and a pickle of a sane size."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeWeights(f"{path.name}: not a torch zip archive (how torch has saved weights since 1.6): {exc}") from None
    for record in records:
        if record.compress_type != zipfile.ZIP_STORED:
            raise UnsafeWeights(f"{path.name}: record {record.filename} is compressed; torch writes weights uncompressed")
        if record.header_offset + record.file_size > size:
            raise UnsafeWeights(f"{path.name}: record {record.filename} claims {record.file_size} bytes past the file's end")
        if record.filename.endswith(".pkl") and record.file_size > MAX_PICKLE_BYTES:
            raise UnsafeWeights(f"{path.name}: its pickle is {record.file_size} bytes, not a weights file's")


def tensors_in(obj, prefix: str = "", depth: int = 0) -> list[tuple[str, torch.Tensor]]:
    """Every tensor in nested dicts, lists and tuples, with a dotted name."""
    if depth > 16:
        raise UnsafeWeights(f"nested more than 16 deep at {prefix}: not a weights file's layout")
    if isinstance(obj, torch.Tensor):
        return [(prefix, obj)]
    items: Iterable[tuple[Any, Any]]
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return []
    return [t for k, v in items for t in tensors_in(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)]


def _check_claims(path: Path, obj) -> None:
    size = path.stat().st_size
    total = 0
    for name, tensor in tensors_in(obj):
        claimed = tensor.numel() * tensor.element_size()
        held = tensor.untyped_storage().nbytes()
        if claimed > held:
            raise OversizedClaim(f"tensor {name} claims shape {tuple(tensor.shape)} ({claimed:,} bytes) "
                                f"from {held:,} bytes it really holds (a stretched view, not weights)")
        total += claimed
    if total > size:
        raise OversizedClaim(f"its tensors claim {total:,} bytes in a file of {size:,} "
                            "(views of the same bytes counted again and again)")


def load_tensor_dict(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a state dict, also from a checkpoint that pickles foreign config objects beside them
    (fairseq's `{"model": state dict, "cfg": ...}`); nothing named in the file is ever called."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_TENSORS_ONLY)
        except Exception as exc:
            raise UnsafeWeights(f"{path.name}: {exc.__class__.__name__}: {str(exc)[:300]}") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise UnsafeWeights(f"{path.name}: no state dict inside")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise UnsafeWeights(f"{path.name}: no tensors inside")
    return tensors
