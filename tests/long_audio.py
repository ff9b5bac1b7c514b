"""Crafted recordings that are small on disk and hours long: one second of encoded Opus muxed again and again
with moving timestamps, so a test or bench makes an hour of audio in about a second."""
from __future__ import annotations

import io

import av
import numpy as np


class _Unseekable:
    """An output the muxer cannot seek back in, so a WebM ends up stating no length, as a browser's does."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()

    def write(self, data: bytes) -> int:
        return self.buf.write(data)


def long_recording(minutes: float, fmt: str = "ogg") -> bytes:
    """`minutes` of quiet noise as Opus at 6 kb/s: "ogg" states its length, "webm" states none."""
    out = io.BytesIO() if fmt == "ogg" else _Unseekable()
    with av.open(out, mode="w", format=fmt) as container:
        stream = container.add_stream("libopus", rate=48_000, layout="mono")
        stream.bit_rate = 6_000
        second = (np.random.default_rng(0).standard_normal(48_000) * 0.05).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(second.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = 48_000
        frame.pts = 0
        packets = [*stream.encode(frame), *stream.encode(None)]
        for k in range(int(minutes * 60)):
            for p in packets:
                copy = av.Packet(bytes(p))
                copy.pts = copy.dts = p.pts + k * 48_000
                copy.time_base, copy.duration, copy.stream = p.time_base, p.duration, stream
                container.mux(copy)
    return out.getvalue() if isinstance(out, io.BytesIO) else out.buf.getvalue()
