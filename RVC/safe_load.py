"""Reading weights files that third parties made, without running anything inside them.

A `.pth`/`.pt` file is a pickle, and unpickling can call any function the file names. Every weights file
the voice worker opens comes through here:
- `torch.load(weights_only=True)` first: torch's own restricted unpickler, enough for RVC checkpoints and
  our own artifacts;
- fairseq checkpoints (the `hubert_base.pt` RVC distributions ship) also pickle their config objects, which
  that refuses. For those a second unpickler resolves only the handful of functions torch needs to rebuild
  tensors; every other name in the file becomes an inert placeholder that ignores its arguments, so a
  crafted file gets placeholders, never a call to what it named. Only the tensors are kept.
"""
from __future__ import annotations

import pickle
import types
from pathlib import Path

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


def load_weights(path: Path):
    """The checkpoint's object, read by torch's weights-only unpickler; raises UnsafeWeights when it can't be."""
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UnsafeWeights(f"{Path(path).name}: {exc.__class__.__name__}: {str(exc)[:300]}") from None


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
