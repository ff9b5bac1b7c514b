"""How many tokens a text can cost a model, counted so that it is never less than a real tokenizer's count.

Byte-level BPE tokenizers (SmolLM2's, GPT's, Llama's ...) never make a token of less than one UTF-8 byte, so
outside ASCII the byte count bounds the tokens: a Chinese character is 3 bytes, an emoji 4 (a characters/4
estimate undercounted Chinese by about 2x and emoji by about 11x). ASCII words are cheaper: a run of letters
costs at most one token per two letters plus one, digits and punctuation one each.
"""
from __future__ import annotations

import re

_PIECES = re.compile(r"[A-Za-z]+|[\x00-\x7f]|[^\x00-\x7f]+")

# what a chat template adds around each message (role markers, separators)
MESSAGE_OVERHEAD = 8


def token_bound(text: str) -> int:
    total = 0
    for piece in _PIECES.findall(text):
        first = piece[0]
        if first.isascii() and first.isalpha():
            total += (len(piece) + 1) // 2 + 1
        elif first.isascii():
            total += 0 if first == " " else 1  # a single space rides on the next word's token
        else:
            total += len(piece.encode("utf-8"))
    return total + 1
