"""Per-gateway request rate limiting: one token bucket per gateway, in memory, per replica.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; a request takes
one token or is refused with the number of seconds until one is available (sent as
``Retry-After`` on a 429). Buckets that have refilled completely carry no information and are
dropped by :meth:`RateLimiter.prune`, so memory follows the number of recently active gateways.
The clock is injected so the logic is tested without sleeping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    """``rate`` requests per second sustained, ``burst`` at once."""

    rate: float = 2.0
    burst: float = 20.0

    def __post_init__(self) -> None:
        if not (self.rate > 0 and self.burst >= 1):
            raise ValueError("rate must be positive and burst at least 1")


class RateLimiter:
    """Token buckets keyed by gateway; not thread-safe (one event loop owns it)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, last refill time]

    def acquire(self, key: str) -> float:
        """Take one token for ``key``: 0.0 if granted, else seconds until one will be there."""
        now = self._clock()
        bucket = self._buckets.get(key)
        rate, burst = self.limit.rate, self.limit.burst
        if bucket is None:
            self._buckets[key] = [burst - 1.0, now]
            return 0.0
        tokens = min(burst, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / rate

    @staticmethod
    def retry_after_header(wait: float) -> str:
        """Whole seconds for ``Retry-After`` (at least 1)."""
        return str(max(1, math.ceil(wait)))

    def prune(self) -> int:
        """Drop buckets that are full again; returns how many were dropped."""
        now = self._clock()
        rate, burst = self.limit.rate, self.limit.burst
        full = [
            k
            for k, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * rate >= burst
        ]
        for key in full:
            del self._buckets[key]
        return len(full)

    def __len__(self) -> int:
        return len(self._buckets)
