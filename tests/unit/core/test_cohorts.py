"""Cohort membership: hash buckets, percent and selector steps, cumulative steps."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from modelfleet.core import CohortPlan, LabelSelector, Step, bucket, first_step, in_cohort

from .factories import NS, gateway, release

NAMES = [f"gw-{i:05d}" for i in range(10_000)]


def test_bucket_is_the_documented_formula() -> None:
    salt, name = "retail/detector", "gw-00042"
    expected = int(hashlib.sha256(f"{salt}/{name}".encode()).hexdigest()[:8], 16) % 10000
    assert bucket(salt, name) == expected


@pytest.mark.parametrize("percent", [1, 5, 10, 25, 50])
def test_percent_of_ten_thousand_names_is_close_to_that_share(percent: int) -> None:
    inside = sum(bucket("retail/detector", n) < percent * 100 for n in NAMES)
    expected = percent * 100
    assert abs(inside - expected) < 4 * (expected * (1 - percent / 100)) ** 0.5 + 5


def test_one_hundred_percent_is_everyone() -> None:
    assert all(bucket("retail/detector", n) < 100 * 100 for n in NAMES)


def test_steps_are_cumulative_and_monotonic() -> None:
    steps = (
        Step("canary", percent=5),
        Step("early", selector=LabelSelector.of({"ring": "early"})),
        Step("half", percent=50),
        Step("fleet", percent=100),
    )
    r = release(steps=steps)
    plan = CohortPlan.of(r)
    gws = [gateway(n, labels={"ring": "early"} if i % 7 == 0 else {}) for i, n in enumerate(NAMES)]
    sizes = [sum(plan.in_cohort(g, s) for g in gws) for s in range(len(steps))]
    assert sizes == sorted(sizes)
    assert sizes[-1] == len(gws)
    assert 400 < sizes[0] < 600
    for g in gws:
        first = plan.first_step(g)
        assert first is not None
        assert [plan.in_cohort(g, s) for s in range(len(steps))] == [
            s >= first for s in range(len(steps))
        ]


def test_selector_step_adds_matching_gateways() -> None:
    r = release()  # canary 5 %, early = ring:early, fleet 100 %
    early = [n for n in NAMES[:2000] if bucket(f"{NS}/detector", n) >= 500][:20]
    for name in early:
        assert first_step(r, gateway(name, labels={"ring": "early"})) == 1
        assert first_step(r, gateway(name)) == 2
        assert not in_cohort(r, gateway(name, labels={"ring": "early"}), 0)
        assert in_cohort(r, gateway(name, labels={"ring": "early"}), 1)


def test_salt_defaults_to_namespace_slash_model_and_can_be_overridden() -> None:
    assert release().salt == f"{NS}/detector"
    assert release(salt="fixed").salt == "fixed"
    a = {n for n in NAMES if bucket(f"{NS}/detector", n) < 500}
    b = {n for n in NAMES if bucket("fixed", n) < 500}
    assert a != b


def test_same_canaries_every_release_of_a_model() -> None:
    one, two = CohortPlan.of(release("2.0.0")), CohortPlan.of(release("3.0.0"))
    gws = [gateway(n) for n in NAMES[:2000]]
    assert [one.first_step(g) for g in gws] == [two.first_step(g) for g in gws]


def test_gateway_outside_the_release_selector_or_namespace_never_joins() -> None:
    r = release(selector=LabelSelector.of({"tier": "retail"}))
    assert first_step(r, gateway("gw-1", labels={"tier": "lab"})) is None
    assert first_step(r, gateway("gw-1", labels={"tier": "retail"}, namespace="other")) is None
    assert first_step(r, gateway("gw-1", labels={"tier": "retail"})) is not None


def test_bake_does_not_change_membership() -> None:
    plain = release(steps=(Step("a", percent=10), Step("b", percent=100)))
    baked = release(steps=(Step("a", percent=10, bake=timedelta(hours=1)), Step("b", percent=100)))
    gws = [gateway(n) for n in NAMES[:500]]
    assert [first_step(plain, g) for g in gws] == [first_step(baked, g) for g in gws]
