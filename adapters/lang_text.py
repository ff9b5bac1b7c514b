"""The language of typed text, with Lingua (a maintained detector built for short text).

A detector over all of Lingua's 75 languages takes half a minute and a gigabyte to load and is unsure about
short messages, so one is built per set of expected languages (DOPPEL_LANGUAGES) and kept.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Collection

if TYPE_CHECKING:
    from lingua import LanguageDetector

# Whisper's codes where Lingua's differ
_TO_LINGUA = {"no": "nb", "jw": "jv"}
_FROM_LINGUA = {v: k for k, v in _TO_LINGUA.items()}


class LinguaDetector:
    def __init__(self, languages: Collection[str] = ()) -> None:
        self.languages = tuple(languages)
        self._detectors: dict[frozenset[str], LanguageDetector] = {}
        self._lock = threading.Lock()

    @staticmethod
    def known(code: str) -> bool:
        from lingua import IsoCode639_1

        return hasattr(IsoCode639_1, _TO_LINGUA.get(code, code).upper())

    def _detector(self, codes: frozenset[str]) -> LanguageDetector:
        with self._lock:
            if codes not in self._detectors:
                from lingua import IsoCode639_1, LanguageDetectorBuilder

                isos = [getattr(IsoCode639_1, _TO_LINGUA.get(c, c).upper()) for c in sorted(codes)]
                self._detectors[codes] = LanguageDetectorBuilder.from_iso_codes_639_1(*isos).build()
            return self._detectors[codes]

    def warm_up(self) -> None:
        self.scores("Hello there, how are you?")

    def scores(self, text: str, languages: Collection[str] = ()) -> dict[str, float]:
        codes = frozenset(c for c in (languages or self.languages) if self.known(c))
        if not codes or not any(ch.isalpha() for ch in text):
            return {}
        if len(codes) == 1:
            return {next(iter(codes)): 1.0}
        values = self._detector(codes).compute_language_confidence_values(text)
        out = {}
        for value in values:
            code = value.language.iso_code_639_1.name.lower()
            out[_FROM_LINGUA.get(code, code)] = value.value
        return out
