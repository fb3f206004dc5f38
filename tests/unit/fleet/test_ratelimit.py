"""Per-gateway token buckets, on an injected clock."""

from __future__ import annotations

import pytest

from modelfleet.fleet.ratelimit import RateLimit, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_granted_then_refused() -> None:
    limiter = RateLimiter(RateLimit(rate=1.0, burst=3), Clock())
    assert [limiter.acquire("gw") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("gw") == pytest.approx(1.0)


def test_tokens_refill_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit(rate=2.0, burst=1), clock)
    assert limiter.acquire("gw") == 0.0
    assert limiter.acquire("gw") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("gw") == 0.0


def test_gateways_have_separate_buckets() -> None:
    limiter = RateLimiter(RateLimit(rate=1.0, burst=1), Clock())
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("b") == 0.0
    assert limiter.acquire("a") > 0


def test_refused_requests_do_not_consume_tokens() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit(rate=1.0, burst=1), clock)
    limiter.acquire("gw")
    for _ in range(10):
        limiter.acquire("gw")
    clock.now += 1.0
    assert limiter.acquire("gw") == 0.0


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert RateLimiter.retry_after_header(0.01) == "1"
    assert RateLimiter.retry_after_header(2.2) == "3"


def test_full_buckets_are_pruned() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit(rate=1.0, burst=2), clock)
    limiter.acquire("a")
    limiter.acquire("b")
    clock.now += 0.5
    limiter.acquire("b")
    clock.now += 0.6
    assert limiter.prune() == 1  # a is full again, b is not
    assert len(limiter) == 1


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0.5), (-1, 5)])
def test_nonsense_limits_are_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        RateLimit(rate=rate, burst=burst)
