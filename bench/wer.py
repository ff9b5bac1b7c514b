"""Word error rate with the normalization ASR evaluations usually apply (case, punctuation, spelled-out digits)."""
from __future__ import annotations

import re

_NUMBERS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()


def normalize(text: str) -> list[str]:
    text = text.lower().replace("-", " ").replace("’", "'")
    text = re.sub(r"[^\w\s']", " ", text)
    words = []
    for w in text.split():
        w = w.strip("'")
        if w.isdigit() and int(w) < len(_NUMBERS):
            w = _NUMBERS[int(w)]
        if w:
            words.append(w)
    return words


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(refs: list[str], hyps: list[str]) -> float:
    """Corpus WER: total edits over total reference words."""
    errors = words = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        r, h = normalize(ref), normalize(hyp)
        errors += edit_distance(r, h)
        words += len(r)
    return errors / max(1, words)
