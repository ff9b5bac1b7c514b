"""The one text normaliser and word/character error rate of the project: every WER in tests and benches uses it.

Built on maintained libraries, not hand-written rules: Whisper's own normalisers (`whisper-normalizer`:
English spelling, contractions and numbers for English, case/punctuation/symbols for every other
language), `num2words` to write digits out in the sentence's language before that, and `jiwer` for the
alignment. Both sides of a comparison go through the same normaliser, so "press 1" and "press one" agree.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

# languages written without spaces between words: compare them by characters (CER), not words
UNSPACED = {"zh", "ja", "th", "lo", "my", "km", "yue"}

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


@lru_cache(maxsize=1)
def _english():
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


@lru_cache(maxsize=2)
def _basic(accents: bool = True):
    from whisper_normalizer.basic import BasicTextNormalizer

    return BasicTextNormalizer(remove_diacritics=not accents)


def _base_language(language: str) -> str:
    return (language or "en").lower().replace("_", "-").split("-")[0]


def _spell_numbers(text: str, language: str) -> str:
    """Digits → words in `language` ("12" → "doce"); a language num2words does not know keeps its digits."""
    from num2words import num2words

    def words(match: re.Match) -> str:
        token = match.group(0)
        try:
            value = int(token) if token.isdigit() else float(token.replace(",", "."))
            return " " + num2words(value, lang=language) + " "
        except (NotImplementedError, OverflowError, ValueError):
            return token

    return _NUMBER.sub(words, text)


def _chinese(text: str) -> str:
    """Digits read out as Chinese numerals (十分钟 = 10分钟) and traditional characters as simplified (學 = 学):
    Whisper writes either, and both are the same words."""
    import zhconv

    from adapters.tts_mandarin import chinese_number

    return zhconv.convert(_NUMBER.sub(lambda m: chinese_number(m.group().replace(",", ".")), text), "zh-cn")


def normalize(text: str, language: str = "en", accents: bool = True) -> str:
    """Case, punctuation and symbols folded, numbers in one form: what is compared when error rates are counted.

    English goes through Whisper's English normaliser, which also writes every number as digits and unifies
    spellings ("colour"/"color") and contractions; other languages get their digits spelled out, then the
    basic normaliser (lower case, punctuation and symbols removed, accents kept since they change words).
    `accents=False` folds them too: for references typed without them ("numero", "codigo"), where keeping them
    would count every correctly accented word a recognizer writes as an error.
    """
    language = _base_language(language)
    if language == "en":
        words = _english()(text).split()
    elif language in ("zh", "yue"):
        words = _basic(accents)(_chinese(text)).split()
    else:
        words = _basic(accents)(_spell_numbers(text, language)).split()
    # the English normaliser keeps a stray "." from an ellipsis ("level..." → "level ."): not a word of either side
    return " ".join(w for w in words if any(c.isalnum() for c in w))


def _pairs(refs: Sequence[str], hyps: Sequence[str], language: str, unit: str,
           accents: bool = True) -> tuple[list[str], list[str]]:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        raise ValueError("no sentences to score")
    r = [normalize(x, language, accents) for x in refs]
    h = [normalize(x, language, accents) for x in hyps]
    if unit == "char":
        r, h = [x.replace(" ", "") for x in r], [x.replace(" ", "") for x in h]
    empty = [i for i, x in enumerate(r) if not x]
    if empty:
        raise ValueError(f"reference {empty[0]} ({refs[empty[0]]!r}) has nothing left to compare after normalising")
    return r, h


def wer(refs: Sequence[str], hyps: Sequence[str], language: str = "en") -> float:
    """Corpus word error rate: all edits over all reference words (a sentence with nothing heard counts as 100 %)."""
    import jiwer

    if _base_language(language) in UNSPACED:
        return cer(refs, hyps, language)
    r, h = _pairs(refs, hyps, language, "word")
    return float(jiwer.wer(r, h))


def cer(refs: Sequence[str], hyps: Sequence[str], language: str = "en") -> float:
    """Corpus character error rate over the normalised text with spaces removed (for Chinese, Japanese ...)."""
    import jiwer

    r, h = _pairs(refs, hyps, language, "char")
    return float(jiwer.cer(r, h))


def sentence_errors(ref: str, hyp: str, language: str = "en", accents: bool = True) -> tuple[int, int]:
    """(edits, reference units) of one sentence, so callers can pool or resample sentences themselves."""
    import jiwer

    unit = "char" if _base_language(language) in UNSPACED else "word"
    (r,), (h,) = _pairs([ref], [hyp], language, unit, accents)
    if unit == "char":
        out = jiwer.process_characters(r, h)
        return out.substitutions + out.deletions + out.insertions, len(r)
    out = jiwer.process_words(r, h)
    return out.substitutions + out.deletions + out.insertions, len(r.split())
