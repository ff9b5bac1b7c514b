"""Japanese written as it is read: kanji turned into hiragana by pykakasi (pure Python, its dictionary in the
wheel), for a synthesizer that reads kana but not kanji (eSpeak NG reads every kanji as "Chinese letter")."""
from __future__ import annotations

import threading

_lock = threading.Lock()
_converter = None


def kana_reading(text: str) -> str:
    global _converter
    with _lock:  # building the converter loads its dictionaries once; converting shares its state
        if _converter is None:
            import pykakasi

            _converter = pykakasi.kakasi()
        return "".join(part["hira"] for part in _converter.convert(text))
