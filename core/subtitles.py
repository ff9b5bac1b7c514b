"""SRT and WebVTT from timed transcript segments."""
from __future__ import annotations

from typing import Iterable


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(segments: Iterable[tuple[float, float, str]]) -> str:
    blocks = [f"{i}\n{_stamp(a, ',')} --> {_stamp(b, ',')}\n{text.strip()}\n"
              for i, (a, b, text) in enumerate((s for s in segments if s[2].strip()), start=1)]
    return "\n".join(blocks)


def to_vtt(segments: Iterable[tuple[float, float, str]]) -> str:
    body = "\n".join(f"{_stamp(a, '.')} --> {_stamp(b, '.')}\n{text.strip()}\n" for a, b, text in segments if text.strip())
    return "WEBVTT\n\n" + body
