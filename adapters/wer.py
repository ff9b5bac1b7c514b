"""The one text normaliser and word/character error rate of the project: every WER in tests and benches uses it.

Built on maintained libraries, not hand-written rules: Whisper's own normalisers (`whisper-normalizer`:
English spelling, contractions and numbers for English, case/punctuation/symbols for every other
language), `num2words` to write digits out in the sentence's language before that, and `jiwer` for the
alignment. Both sides of a comparison go through the same normaliser, so "press 1" and "press one" agree.

Two ambiguities of written references are resolved in the recognizer's favour, since the audio cannot tell
(`readings=False` turns both off): a word split or joined differently on the two sides counts once ("voice
mail" / "voicemail", "N B S" / "NBS"), and a number of three or more digits may be read as a number or digit by
digit ("1234" said "one two three four").
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable, Sequence

# languages written without spaces between words: compare them by characters (CER), not words
UNSPACED = {"zh", "ja", "th", "lo", "my", "km", "yue"}

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_DIGIT_RUN = re.compile(r"(?<![\d.,])\d{3,}(?![\d]|[.,]\d)")
_JOINED_MAX = 4  # words of one side that may stand for one word of the other


@lru_cache(maxsize=1)
def _english() -> Callable[[str], str]:
    from whisper_normalizer.english import EnglishTextNormalizer

    normalize: Callable[[str], str] = EnglishTextNormalizer()
    return normalize


@lru_cache(maxsize=2)
def _basic(accents: bool = True) -> Callable[[str], str]:
    from whisper_normalizer.basic import BasicTextNormalizer

    normalize: Callable[[str], str] = BasicTextNormalizer(remove_diacritics=not accents)
    return normalize


def _base_language(language: str) -> str:
    return (language or "en").lower().replace("_", "-").split("-")[0]


def _spell_numbers(text: str, language: str) -> str:
    """Digits → words in `language` ("12" → "doce"); a language num2words does not know keeps its digits."""
    from num2words import num2words

    def words(match: re.Match[str]) -> str:
        token = match.group(0)
        try:
            value = int(token) if token.isdigit() else float(token.replace(",", "."))
            return " " + str(num2words(value, lang=language)) + " "
        except (NotImplementedError, OverflowError, ValueError):
            return token

    return _NUMBER.sub(words, text)


def _chinese(text: str) -> str:
    """Digits read out as Chinese numerals (十分钟 = 10分钟) and traditional characters as simplified (學 = 学):
    Whisper writes either, and both are the same words."""
    import zhconv

    from adapters.tts_mandarin import chinese_number

    return str(zhconv.convert(_NUMBER.sub(lambda m: chinese_number(m.group().replace(",", ".")), text), "zh-cn"))


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


def _joined(words: list[str], other: set[str]) -> list[str]:
    """`words` with each run of 2-4 consecutive words written as one where the other side writes it so."""
    out, i = [], 0
    while i < len(words):
        for k in range(min(_JOINED_MAX, len(words) - i), 1, -1):
            if "".join(words[i:i + k]) in other:
                out.append("".join(words[i:i + k]))
                i += k
                break
        else:
            out.append(words[i])
            i += 1
    return out


def _same_spacing(ref: str, hyp: str) -> tuple[str, str]:
    r, h = ref.split(), hyp.split()
    r = _joined(r, set(h))
    return " ".join(r), " ".join(_joined(h, set(r)))


def _edits(ref: str, hyp: str) -> int:
    import jiwer

    if not hyp:
        return len(ref.split())
    out = jiwer.process_words(ref, hyp)
    return out.substitutions + out.deletions + out.insertions


def _best_reading(ref: str, hyp: str, language: str, accents: bool) -> tuple[str, str]:
    """The normalised reference, with each long number read the way (as a number, or digit by digit) that the
    normalised hypothesis comes closest to, and the hypothesis, both spaced alike (_same_spacing); one number at a
    time, so a long reference costs a few alignments, not 2^n."""
    numbers = sorted(set(_DIGIT_RUN.findall(ref)))
    digits = {n: " ".join(n) for n in numbers}

    def form(spelt: set[str]) -> tuple[str, str]:
        text = _DIGIT_RUN.sub(lambda m: " " + digits[m.group()] + " " if m.group() in spelt else m.group(), ref)
        return _same_spacing(normalize(text, language, accents), hyp)

    spelt: set[str] = set()
    best = form(spelt)
    cost = _edits(*best)
    for number in numbers:
        trial = form(spelt | {number})
        trial_cost = _edits(*trial)
        if trial_cost < cost:
            spelt, best, cost = spelt | {number}, trial, trial_cost
    return best


def _checked(refs: Sequence[str], hyps: Sequence[str]) -> tuple[Sequence[str], Sequence[str]]:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        raise ValueError("no sentences to score")
    return refs, hyps


def _pairs(refs: Sequence[str], hyps: Sequence[str], language: str, unit: str,
           accents: bool = True, readings: bool = True) -> tuple[list[str], list[str]]:
    _checked(refs, hyps)
    r = [normalize(x, language, accents) for x in refs]
    h = [normalize(x, language, accents) for x in hyps]
    empty = [i for i, x in enumerate(r) if not x]
    if empty:
        raise ValueError(f"reference {empty[0]} ({refs[empty[0]]!r}) has nothing left to compare after normalising")
    if unit == "char":
        return [x.replace(" ", "") for x in r], [x.replace(" ", "") for x in h]
    if readings:
        r, h = map(list, zip(*(_best_reading(raw, hyp, language, accents) for raw, hyp in zip(refs, h))))
    return r, h


def wer(refs: Sequence[str], hyps: Sequence[str], language: str = "en", readings: bool = True) -> float:
    """Corpus word error rate: all edits over all reference words (a sentence with nothing heard counts as 100 %)."""
    if _base_language(language) in UNSPACED:
        return cer(refs, hyps, language)
    counts = [sentence_errors(r, h, language, readings=readings) for r, h in zip(*_checked(refs, hyps))]
    return sum(e for e, _ in counts) / sum(n for _, n in counts)


def cer(refs: Sequence[str], hyps: Sequence[str], language: str = "en") -> float:
    """Corpus character error rate over the normalised text with spaces removed (for Chinese, Japanese ...)."""
    import jiwer

    r, h = _pairs(refs, hyps, language, "char")
    return float(jiwer.cer(r, h))


def compared(ref: str, hyp: str, language: str = "en", accents: bool = True, readings: bool = True) -> tuple[str, str]:
    """The reference and hypothesis exactly as sentence_errors aligns them (for showing where errors are)."""
    unit = "char" if _base_language(language) in UNSPACED else "word"
    (r,), (h,) = _pairs([ref], [hyp], language, unit, accents, readings)
    return r, h


def sentence_errors(ref: str, hyp: str, language: str = "en", accents: bool = True,
                    readings: bool = True) -> tuple[int, int]:
    """(edits, reference units) of one sentence, so callers can pool or resample sentences themselves.

    The units are the reference's normalised words as written, whichever reading was scored, so that two
    recognizers scored on the same sentences always share one denominator."""
    import jiwer

    unit = "char" if _base_language(language) in UNSPACED else "word"
    (r,), (h,) = _pairs([ref], [hyp], language, unit, accents, readings)
    if unit == "char":
        out = jiwer.process_characters(r, h)
        return out.substitutions + out.deletions + out.insertions, len(r)
    return _edits(r, h), len(normalize(ref, language, accents).split())
