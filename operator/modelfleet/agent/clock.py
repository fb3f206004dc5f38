"""Time for the agent, injectable: a :class:`Clock` protocol, the real one, and backoff.

Nothing in the agent reads the system clock or sleeps except through a :class:`Clock`, so tests
and the simulator control time and N agents can share one event loop.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Monotonic time for intervals, wall time for reports, and sleeping."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (intervals, deadlines)."""
        ...

    def now(self) -> datetime:
        """The current wall time, timezone-aware UTC (timestamps that leave the device)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (cancellable)."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


def isoformat(moment: datetime) -> str:
    """RFC 3339 with a ``Z`` and whole seconds, as Kubernetes writes date-times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Backoff:
    """Exponential backoff with full jitter: ``uniform(base/2, min(cap, base * factor**n))``.

    ``next_delay()`` advances the attempt counter; ``reset()`` after a success.
    """

    base: float = 1.0
    cap: float = 300.0
    factor: float = 2.0
    rng: random.Random | None = None
    attempts: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * self.factor ** min(self.attempts, 64))
        self.attempts += 1
        rng = self.rng or random
        return rng.uniform(min(self.base, ceiling) / 2, ceiling)

    def reset(self) -> None:
        self.attempts = 0
