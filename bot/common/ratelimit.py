"""A per-user token bucket: short bursts pass, a steady flood is told how long to wait."""
from __future__ import annotations

import time
from typing import Callable

from core.errors import RateLimited


class RateLimiter:
    def __init__(self, per_minute: float, *, burst: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0  # tokens a second
        self.capacity = float(burst if burst is not None else max(1, per_minute))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # user → (tokens, when)

    def check(self, user: str) -> None:
        """Spend one token for `user`, or raise RateLimited with the seconds until one is free."""
        wait = self._spend(user)
        if wait:
            raise RateLimited(wait)

    def allow(self, key: str) -> bool:
        """Spend one token for `key` if there is one; False (and nothing spent) if not."""
        return not self._spend(key)

    def _spend(self, key: str) -> float:
        """0 when a token was spent, else the seconds until one is free."""
        if self.rate <= 0:
            return 0.0  # 0 means no limit
        now = self.clock()
        tokens, when = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - when) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return max(1.0, (1.0 - tokens) / self.rate)
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 10_000:
            self._forget_full(now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        # a bucket that has refilled carries no state worth keeping
        full = [u for u, (t, w) in self._buckets.items() if t + (now - w) * self.rate >= self.capacity]
        for user in full:
            del self._buckets[user]


def error_replies() -> RateLimiter:
    """How often one chat is told about errors: a burst of bad messages (or a flood past the rate limit) gets a
    few error replies, then one every 20 s, instead of one each; the rest are only logged."""
    return RateLimiter(3, burst=3)
