"""What of a spoken answer the person actually heard, when they interrupted it.

Each sentence's audio is counted as it is sent; a sentence cut part-way keeps the words whose share of its
text had been spoken by then (speech runs roughly evenly over the letters of a sentence), marked as cut.
"""
from __future__ import annotations

CUT_MARK = "\u2026"


def heard_part(sentence: str, fraction: float) -> str:
    """The words of `sentence` spoken by the time `fraction` (0..1) of its audio had played."""
    if fraction >= 1.0:
        return sentence
    words = sentence.split()
    if not words or fraction <= 0.0:
        return ""
    total = sum(len(w) for w in words)
    spoken, kept = 0, []
    for word in words:
        spoken += len(word)
        if spoken / total > fraction:
            break
        kept.append(word)
    return " ".join(kept).rstrip(",;:.!?") + CUT_MARK if kept else ""


def heard_answer(sentences: list[str], played: list[float]) -> str:
    """The answer as heard: whole sentences while each played to its end, then the cut one's heard words.

    `played[i]` is the share (0..1) of sentence i's audio that was sent; sentences without audio were not heard.
    """
    parts: list[str] = []
    for sentence, fraction in zip(sentences, played):
        part = heard_part(sentence, fraction)
        if part:
            parts.append(part)
        if fraction < 1.0:
            break
    return " ".join(parts)
