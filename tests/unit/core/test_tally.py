"""The incremental counts (core.tally) equal a walk over the fleet (gates.measure), after every
event of random sequences of gateway adds, changes and deletes, release changes and clock moves
(forward mostly, sometimes back); and the building blocks (core.windows) equal their plain
definitions."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from modelfleet.core.decide import FleetView, decide
from modelfleet.core.gates import Measurement, Tuning, measure, weighted_p95
from modelfleet.core.gateway import Gateway, HealthReport, ModelState, ModelStateKind, compact
from modelfleet.core.phases import Phase
from modelfleet.core.selectors import LabelSelector
from modelfleet.core.tally import FleetTally
from modelfleet.core.types import Release, Step
from modelfleet.core.windows import Count, SortedWeights, Window
from tests.unit.core.factories import MODEL, NS, T0, digest, release, rolling, settled

VERSIONS = ("1.0.0", "2.0.0", "3.0.0")
STATES = tuple(ModelStateKind)
STEPS = (
    (Step("canary", percent=10), Step("ring", selector=LabelSelector.of({"ring": "a"})),
     Step("all", percent=100)),
    (Step("half", percent=50), Step("all", percent=100)),
    (Step("some", percent=30), Step("most", percent=90)),  # does not reach everyone
)  # fmt: skip
SELECTORS = (
    None,
    LabelSelector.of({"tier": "x"}),
    LabelSelector.of({"tier": "y"}),
    LabelSelector.of({"tier": "y"}),
    LabelSelector.of({"tier": "x"}),
)
TUNING = Tuning(offline_after=timedelta(seconds=40), report_max_age=timedelta(seconds=60))


def _gateway(rng: random.Random, name: str, now_s: float) -> Gateway:
    def when() -> object:
        return None if rng.random() < 0.1 else T0 + timedelta(seconds=now_s - rng.randint(0, 90))

    labels = {}
    if rng.random() < 0.6:
        labels["tier"] = rng.choice("xy")
    if rng.random() < 0.3:
        labels["ring"] = "a"
    models = {}
    reports = []
    for model in (MODEL, "other"):
        if rng.random() < 0.8:
            version = rng.choice(VERSIONS)
            by_digest = rng.random() < 0.7
            active = rng.random() < 0.5
            models[model] = ModelState(
                model,
                version,
                digest(version) if by_digest else None,
                ModelStateKind.ACTIVE if active else rng.choice(STATES),
            )
        for _ in range(rng.randint(0, 2)):
            reports.append(
                HealthReport(
                    model,
                    models[model].version
                    if model in models and rng.random() < 0.7
                    else rng.choice(VERSIONS),
                    window_end=when(),  # type: ignore[arg-type]
                    requests=rng.choice((0, 5, 100, 1000)),
                    errors=rng.randint(0, 20),
                    latency_p95_ms=rng.choice((None, 10.0, 50.0, 50.0, 200.0, rng.random())),
                    drift_score=rng.choice((None, 0.1, 0.5, rng.random())),
                )
            )
    return Gateway(name, NS, labels, models, tuple(reports), when())  # type: ignore[arg-type]


def _release(rng: random.Random, name: str, model: str = MODEL) -> Release:
    steps = rng.choice(STEPS)
    phase = rng.choice(tuple(Phase))
    if rng.random() < 0.2:
        status = settled()
    else:
        target = rng.choice(VERSIONS[1:])
        status = rolling(target, phase=phase, step=rng.randrange(len(steps)))
        if rng.random() < 0.1:
            status = replace(status, target=None)
    return release(
        name=name,
        model=model,
        steps=steps,
        selector=rng.choice(SELECTORS),
        salt=rng.choice((None, "s1")),
        status=status,
    )


def _walked(m: Measurement) -> Measurement:
    """A walk's measurement as the tally states it (the p95 figure rather than its samples)."""
    return replace(m, p95_samples=(), latency_p95=weighted_p95(m.p95_samples))


@pytest.mark.parametrize("seed", range(12))
def test_tally_equals_a_walk_after_every_event(seed: int) -> None:
    rng = random.Random(seed)
    tally = FleetTally(NS, silent_after=50.0)
    fleet: dict[str, Gateway] = {}
    now_s = 0.0
    releases = [_release(rng, "a"), _release(rng, "b"), _release(rng, "c", model="other")]
    for _ in range(250):
        roll = rng.random()
        if roll < 0.45 or not fleet:
            gw = _gateway(rng, f"gw-{rng.randrange(40)}", now_s)
            fleet[gw.name] = gw
            tally.put(gw)
        elif roll < 0.6:
            name = rng.choice(sorted(fleet))
            del fleet[name]
            assert tally.drop(name) is not None
        elif roll < 0.7:
            i = rng.randrange(len(releases))
            releases[i] = _release(rng, releases[i].name, releases[i].spec.model)
        elif roll < 0.75 and len(releases) > 1:
            releases.pop(rng.randrange(len(releases)))
        elif roll < 0.8:
            releases.append(_release(rng, f"r{rng.randrange(5)}", rng.choice((MODEL, "other"))))
            releases = list({r.name: r for r in releases}.values())
        elif roll < 0.85:
            r = rng.randrange(len(releases))
            st = releases[r].status
            step = rng.randrange(len(releases[r].spec.steps))
            releases[r] = replace(
                releases[r], status=replace(st, rollout=replace(st.rollout, step=step))
            )
        elif roll < 0.95:
            now_s += rng.choice((0.0, 1.0, 7.5, 20.0, 45.0))
        else:
            now_s -= rng.choice((1.0, 30.0))
        _check(tally, fleet, releases, T0 + timedelta(seconds=now_s))


def _check(
    tally: FleetTally, fleet: dict[str, Gateway], releases: list[Release], now: datetime
) -> None:
    for r in releases:
        got = tally.measure(r, releases, now, TUNING)
        want = _walked(measure(r, fleet.values(), releases, now, TUNING))
        assert got == want, r.name
    assert len(tally) == len(fleet)
    states: dict[tuple[str, str, str], int] = {}
    for gw in fleet.values():
        for model, state in gw.models.items():
            key = (model, state.version or "", state.state.value)
            states[key] = states.get(key, 0) + 1
    assert tally.states() == states
    at = now.timestamp()
    silent = sum(g.last_seen is None or g.last_seen.timestamp() <= at - 50 for g in fleet.values())
    assert tally.silent(at) == silent
    for version in VERSIONS:
        want_runs = FleetView(tuple(fleet.values())).runs(MODEL, version)
        assert tally.runs(MODEL, version) == want_runs


def test_decide_on_the_tally_equals_decide_on_the_walk() -> None:
    rng = random.Random(7)
    tally = FleetTally(NS)
    gateways = [_gateway(rng, f"gw-{i}", 0.0) for i in range(60)]
    for gw in gateways:
        tally.put(gw)
    for i in range(30):
        r = _release(rng, "a")
        now = T0 + timedelta(seconds=i * 3)
        walked = decide(r, FleetView(gateways=tuple(gateways), releases=(r,)), now)
        counted = decide(r, FleetView(releases=(r,), tally=tally), now)
        assert counted.status == walked.status
        assert counted.events == walked.events
        assert counted.requeue_after == walked.requeue_after


def test_sorted_weights_equal_weighted_p95_and_max() -> None:
    rng = random.Random(3)
    sw = SortedWeights()
    pairs: list[tuple[float, int]] = []
    for _ in range(3000):
        if pairs and rng.random() < 0.4:
            value, weight = pairs.pop(rng.randrange(len(pairs)))
            sw.remove(value, weight)
        else:
            pair = (float(rng.randint(0, 400)) / 4, rng.choice((0, 0, 1, 7, 100, -3)))
            pairs.append(pair)
            sw.add(*pair)
        assert sw.percentile() == weighted_p95(pairs)
        assert sw.maximum() == (max(v for v, _ in pairs) if pairs else None)


def test_window_counts_what_is_fresh_and_says_when_time_went_back() -> None:
    rng = random.Random(5)
    window = Window(10.0, Count())
    items: list[float] = []
    now = 0.0
    for _ in range(3000):
        roll = rng.random()
        if roll < 0.5:
            at = now - rng.uniform(-2, 15)
            items.append(at)
            window.add(at)
        elif roll < 0.8 and items:
            window.remove(items.pop(rng.randrange(len(items))))
        else:
            now += rng.uniform(0, 3)
        assert window.advance(now)
        assert window.agg.n == sum(at > now - 10.0 for at in items)
    assert not window.advance(now - 1)


def test_a_compacted_gateway_equals_the_parsed_one() -> None:
    rng = random.Random(11)
    for i in range(200):
        gw = _gateway(rng, f"gw-{i}", 0.0)
        assert compact(gw) == gw
