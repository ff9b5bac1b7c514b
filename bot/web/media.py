"""Reply audio and video kept in memory for a while, so the page can point an <audio>/<video> at a URL."""
from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Media:
    data: bytes
    media_type: str
    owner: str  # the web user it was made for; nobody else may fetch it


class MediaStore:
    """Least recently added goes first once the byte budget is spent; a page plays its parts within seconds."""

    def __init__(self, budget_bytes: int = 256 * 1024 * 1024) -> None:
        self.budget = budget_bytes
        self._items: OrderedDict[str, Media] = OrderedDict()
        self._used = 0

    def put(self, data: bytes, media_type: str, owner: str) -> str:
        key = secrets.token_urlsafe(16)
        self._items[key] = Media(data, media_type, owner)
        self._used += len(data)
        while self._used > self.budget and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._used -= len(old.data)
        return key

    def get(self, key: str, owner: str) -> Media | None:
        item = self._items.get(key)
        return item if item is not None and item.owner == owner else None
