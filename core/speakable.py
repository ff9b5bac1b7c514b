"""What the synthesizer should say for a sentence the LLM wrote: the same words without written-only markup.

The text reply keeps the LLM's sentence as written; only the voice gets this form. Small models in particular
answer with Markdown, links and emoji, which a TTS either reads out symbol by symbol ("asterisk asterisk")
or stumbles over.
"""
from __future__ import annotations

import re
import unicodedata

_URL = re.compile(r"\b(?:https?://|www\.)([^\s/]+)\S*", re.IGNORECASE)
_CODE = re.compile(r"`+([^`]*)`+")
_EMPHASIS = re.compile(r"(\*{1,3}|_{2,3})(\S(?:.*?\S)?)\1")
_HEADING_OR_LIST = re.compile(r"^\s*(?:#{1,6}\s+|[-*•]\s+|>\s*)")
_NUMBER_SIGN = re.compile(r"#(?=\d)")
_WRITTEN_ONLY = re.compile(r"[\[\]{}()|~^\\_]")
_STRAY_MARK = re.compile(r"(?<!\s)[*#]|[*#](?!\s)")  # left by broken Markdown; "2 * 3" keeps its sign
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_MARK = re.compile(r"\s+([,.;:!?。，！？；：])")


def _is_pictograph(ch: str) -> bool:
    # emoji and other pictographs are "Symbol, other"; letters, digits, currency and maths signs are not
    return unicodedata.category(ch) == "So" or ch in "\ufe0f\u200d"


def spoken_form(text: str) -> str:
    """`text` as it should be spoken; `text` itself when nothing speakable would be left."""
    out = _URL.sub(lambda m: m.group(1).removeprefix("www."), text)
    out = _CODE.sub(r"\1", out)
    out = _EMPHASIS.sub(r"\2", out)
    out = _HEADING_OR_LIST.sub("", out)
    out = _NUMBER_SIGN.sub("number ", out)
    out = _STRAY_MARK.sub(" ", _WRITTEN_ONLY.sub(" ", out))
    out = "".join(" " if _is_pictograph(ch) else ch for ch in out)
    out = _SPACE_BEFORE_MARK.sub(r"\1", _SPACES.sub(" ", out)).strip()
    return out if any(ch.isalnum() for ch in out) else text
