"""SRT and WebVTT from timed transcript segments."""
from __future__ import annotations

import re
from typing import Iterable

_CUE = re.compile(r"(\d+):(\d\d):(\d\d)[,.](\d{3}) --> (\d+):(\d\d):(\d\d)[,.](\d{3})[^\n]*\n(.*?)(?:\n\n|\n?$)", re.S)


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


def read_cues(text: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of each cue of an SRT or WebVTT file."""
    def seconds(h: str, m: str, s: str, ms: str) -> float:
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    return [(seconds(*g[0:4]), seconds(*g[4:8]), " ".join(g[8].split())) for g in _CUE.findall(text.replace("\r\n", "\n"))]


def joined(files: Iterable[tuple[float, list[tuple[float, float, str]]]]) -> list[tuple[float, float, str]]:
    """The cues of several recordings played one after another: (length, cues) each, shifted by what came before."""
    out: list[tuple[float, float, str]] = []
    offset = 0.0
    for length, cues in files:
        out += [(offset + a, offset + b, text) for a, b, text in cues]
        offset += length
    return out
