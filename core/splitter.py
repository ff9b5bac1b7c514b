"""Turns a stream of LLM text into speakable sentences, as early as each one is complete."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import AsyncIterable, AsyncIterator, Iterator

# Chinese/Japanese full-width marks end a sentence without a following space.
CJK_TERMINALS = "。！？；"
WESTERN_TERMINALS = ".!?;…"
# Soft breaks: where an over-long sentence may be cut.
SOFT_BREAKS = ",:—–，、："
CLOSERS = "\"'”’)]}»」』）"

ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e a.m p.m u.s u.k no fig approx dept est inc ltd co jan feb mar apr "
    "jun jul aug sep sept oct nov dec mt ft".split()
)

_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")


@dataclass(frozen=True)
class SplitterConfig:
    min_chars: int = 12  # shorter pieces ("Yes.") are merged with the next one
    max_chars: int = 220  # longer ones are cut at a soft break
    # > 0: the answer's first piece may end at a comma (colon, dash) once it has this many characters, so the first
    # audio is made from a clause instead of a whole sentence (a converted voice pays per piece; see ReplyPipeline)
    first_clause_chars: int = 0


class SentenceSplitter:
    """Feed text pieces in; take complete sentences out. `flush()` returns what is left at the end."""

    def __init__(self, config: SplitterConfig | None = None) -> None:
        self.config = config or SplitterConfig()
        self._buf = ""
        self._pending = ""  # a closed sentence too short to speak alone
        self._emitted = 0
        self.clauses = 0  # pieces that end a clause, not a sentence (at most the first)

    def feed(self, piece: str) -> list[str]:
        self._buf += piece
        return list(self._drain(final=False))

    def flush(self) -> list[str]:
        out = list(self._drain(final=True))
        rest = _join(self._pending, self._buf)
        self._buf = self._pending = ""
        if rest:
            out.append(rest)
        return out

    def _drain(self, final: bool) -> Iterator[str]:
        while True:
            cut = self._find_boundary(final)
            early = self._first_clause_cut()
            clause = early is not None and (cut is None or early < cut)
            if clause:
                cut = early
            if cut is None:
                cut = self._forced_cut()
                if cut is None:
                    return
            sentence, self._buf = self._buf[:cut], self._buf[cut:]
            merged = _join(self._pending, sentence)
            if not merged:
                continue
            if _spoken_length(merged) < self.config.min_chars:
                self._pending = merged
                continue
            self._pending = ""
            self._emitted += 1
            self.clauses += clause
            yield merged

    def _find_boundary(self, final: bool) -> int | None:
        buf = self._buf
        i = 0
        n = len(buf)
        while i < n:
            ch = buf[i]
            if ch in CJK_TERMINALS:
                return _extend_closers(buf, i + 1)
            if ch in WESTERN_TERMINALS:
                end = i + 1
                while end < n and buf[end] in WESTERN_TERMINALS:
                    end += 1
                end = _extend_closers(buf, end)
                if end >= n:
                    # can't tell yet whether "3." is "3.14" or the end: wait for more text
                    return end if final else None
                if buf[end].isspace() and not self._is_abbreviation(buf, i):
                    return end
                i = end
                continue
            i += 1
        return None

    @staticmethod
    def _is_abbreviation(buf: str, dot: int) -> bool:
        if buf[dot] != ".":
            return False
        m = _WORD_BEFORE.search(buf[:dot])
        if not m:
            return False
        word = m.group(1).lower()
        if word in ABBREVIATIONS:
            return True
        # an initial such as "J. Smith"
        return len(word) == 1 and m.group(1).isupper()

    def _first_clause_cut(self) -> int | None:
        """Where the first piece may end early: after a soft break followed by a space, once it is long enough."""
        if self.config.first_clause_chars <= 0 or self._emitted:
            return None
        buf = self._buf
        for i, ch in enumerate(buf[:-1]):
            if ch in SOFT_BREAKS and buf[i + 1].isspace() and \
                    _spoken_length(_join(self._pending, buf[: i + 1])) >= self.config.first_clause_chars:
                return i + 1
        return None

    def _forced_cut(self) -> int | None:
        buf = self._buf
        limit = self.config.max_chars
        if len(buf) <= limit:
            return None
        window = buf[:limit]
        for marks in (SOFT_BREAKS, " "):
            pos = max(window.rfind(m) for m in marks)
            if pos > limit // 3:
                return pos + 1
        return limit


def _extend_closers(buf: str, end: int) -> int:
    while end < len(buf) and buf[end] in CLOSERS:
        end += 1
    return end


def _is_cjk(ch: str) -> bool:
    return "\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef"


def _spoken_length(text: str) -> int:
    # a CJK character carries about a syllable, so it counts like three Latin letters
    return len(text) + 2 * sum(_is_cjk(c) for c in text)


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _join(first: str, second: str) -> str:
    first, second = _clean(first), _clean(second)
    if not first or not second:
        return first or second
    glue = "" if _is_cjk(first[-1]) or _is_cjk(second[0]) else " "
    return first + glue + second


async def split_stream(pieces: AsyncIterable[str], config: SplitterConfig | None = None) -> AsyncIterator[str]:
    splitter = SentenceSplitter(config)
    async for piece in pieces:
        for sentence in splitter.feed(piece):
            yield sentence
    for sentence in splitter.flush():
        yield sentence


def split_text(text: str, config: SplitterConfig | None = None) -> list[str]:
    splitter = SentenceSplitter(config)
    return splitter.feed(text) + splitter.flush()
