"""An RVC retrieval index's sizes, checked against the file before anything of the size it claims is allocated.

faiss's reader trusts the counts written in a file: a 1 MB product-quantized index can claim millions of vectors,
and reading them back (`reconstruct_n`) takes gigabytes. RVC writes one kind of index, IVF with flat
(uncompressed) lists, in which every vector it claims is stored in the file. That kind, or a plain flat index,
is all that is accepted here: its header, coarse quantizer and list sizes are walked first, and a count the
file's bytes cannot back is refused before faiss reads it. A `.npy` is mapped, not read, so its header's shape
is held against the file's length the same way.
"""
from __future__ import annotations

import mmap
import struct
from pathlib import Path

import numpy as np

FEATURE_DIMS = (256, 768)  # HuBERT content: v1 models read 256-d, v2 768-d
_FLAT = (b"IxF2", b"IxFI")  # faiss's flat index (L2, inner product)
_IVF_FLAT = b"IwFl"  # what RVC's train_index writes ("IVF<n>,Flat")
_HASHTABLE_MAP = 2


class IndexRefused(ValueError):
    """The index is not a kind RVC writes, or claims more than its file holds."""


class _Reader:
    def __init__(self, data: mmap.mmap) -> None:
        self.data, self.pos = data, 0

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.left:
            raise IndexRefused("the file ends before the sizes it gives")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def number(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def counted(self, item_bytes: int) -> int:
        """A faiss vector (its count, then its items), skipped; the count, once the file is seen to hold it."""
        count = self.number("Q")
        self.take(count * item_bytes)
        return count

    def sizes(self, count: int) -> list[int]:
        return list(struct.unpack(f"<{count}Q", self.take(count * 8)))


def _header(r: _Reader) -> tuple[int, int]:
    d, ntotal = r.number("i"), r.number("q")
    r.take(16 + 1)  # two unused counts, is_trained
    if r.number("i") > 1:  # metric types past inner product and L2 carry an argument
        r.take(4)
    if d <= 0 or ntotal < 0:
        raise IndexRefused(f"it gives {d} dimensions and {ntotal} vectors")
    return d, ntotal


def _flat(r: _Reader) -> tuple[int, int]:
    d, ntotal = _header(r)
    if r.counted(4) != d * ntotal:
        raise IndexRefused(f"its {ntotal} vectors of {d} numbers are not what it stores")
    return d, ntotal


def _ivf_flat(r: _Reader) -> tuple[int, int]:
    d, ntotal = _header(r)
    nlist = r.number("Q")
    r.number("Q")  # nprobe
    if r.take(4) not in _FLAT:
        raise IndexRefused("its coarse quantizer is not a flat index")
    quantizer_d, centroids = _flat(r)
    if quantizer_d != d or centroids != nlist:
        raise IndexRefused(f"{nlist} lists over {centroids} centroids of {quantizer_d} numbers, for {d}-d vectors")
    if r.number("B") == _HASHTABLE_MAP:  # the direct map: its kind, its array, and a hash table's pairs
        r.counted(8)
        r.counted(16)
    else:
        r.counted(8)
    if r.take(4) != b"ilar":
        raise IndexRefused("its lists are not stored inside the file")
    if r.number("Q") != nlist or r.number("Q") != 4 * d:
        raise IndexRefused("its lists do not match its header")
    layout = r.take(4)
    if layout == b"full":
        if r.number("Q") != nlist:
            raise IndexRefused("its list sizes do not match its header")
        sizes = r.sizes(nlist)
    elif layout == b"sprs":
        pairs = r.number("Q")
        if pairs % 2 or pairs > 2 * nlist:
            raise IndexRefused("its sparse list sizes are malformed")
        sizes = r.sizes(pairs)[1::2]
    else:
        raise IndexRefused(f"unknown list layout {layout!r}")
    stored = sum(sizes)
    if stored != ntotal:
        raise IndexRefused(f"its header claims {ntotal:,} vectors but its lists hold {stored:,}")
    if stored * (4 * d + 8) > r.left:  # each vector's numbers and its id are in the file
        raise IndexRefused(f"it claims {ntotal:,} vectors ({stored * (4 * d + 8):,} bytes) but the file holds "
                           f"{r.left:,} bytes more")
    return d, ntotal


def check_faiss_index(path: Path) -> tuple[int, int]:
    """(dimensions, vectors) of an index faiss may read: flat or IVF-flat, of RVC's content width, backed by the file."""
    with open(path, "rb") as handle:
        if Path(path).stat().st_size < 4:
            raise IndexRefused("the file is empty")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            r = _Reader(data)
            kind = r.take(4)
            if kind == _IVF_FLAT:
                d, ntotal = _ivf_flat(r)
            elif kind in _FLAT:
                d, ntotal = _flat(r)
            else:
                raise IndexRefused(f"faiss index kind {kind!r} is not one RVC writes (IVF-flat or flat)")
    if d not in FEATURE_DIMS or ntotal == 0:
        raise IndexRefused(f"{ntotal} vectors of {d} numbers are not RVC content features (256-d or 768-d)")
    return d, ntotal


def load_feature_array(path: Path) -> np.ndarray:
    """A `.npy` of content features as float32: mapped first, so its shape must fit the file before it is read."""
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    if mapped.dtype.kind != "f" or mapped.ndim != 2 or mapped.shape[1] not in FEATURE_DIMS or not len(mapped):
        raise IndexRefused(f"an array of {mapped.dtype} {mapped.shape} is not RVC content features (256-d or 768-d)")
    return np.array(mapped, dtype=np.float32)
