"""Gate verdicts, in order, from measured values; and what measure() counts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modelfleet.core import GateResult, Gates, Measurement, judge, measure
from modelfleet.core.gates import weighted_p95
from modelfleet.core.gateway import ModelStateKind

from .factories import T0, gateway, release, rolling

GATES = Gates(
    max_failed_gateways=1,
    max_error_rate=0.01,
    max_latency_p95_ms=200,
    max_drift_score=0.3,
    min_reporting_ratio=0.9,
    min_requests=100,
)
OK = Measurement(
    assigned=10,
    active=10,
    reporting=10,
    requests=1000,
    errors=1,
    p95_samples=((50.0, 100),) * 10,
    drift_max=0.1,
)


def m(**kw: object) -> Measurement:
    from dataclasses import replace

    return replace(OK, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("measured", "result", "reason"),
    [
        (OK, GateResult.PASS, "GatesHeld"),
        (m(failed=2, active=8, reporting=8), GateResult.FAIL, "TooManyFailedGateways"),
        (m(failed=1, active=9, reporting=9), GateResult.PASS, "GatesHeld"),
        (m(errors=20), GateResult.FAIL, "ErrorRateExceeded"),
        (
            m(p95_samples=((50.0, 100),) * 9 + ((900.0, 100),)),
            GateResult.FAIL,
            "LatencyP95Exceeded",
        ),
        (m(drift_max=0.5), GateResult.FAIL, "DriftScoreExceeded"),
        # failures come before convergence: a failing canary aborts even while others download
        (m(failed=2, waiting=5), GateResult.FAIL, "TooManyFailedGateways"),
        (m(errors=500, waiting=5), GateResult.FAIL, "ErrorRateExceeded"),
        # thresholds need evidence: 1 error in 1 request is not a verdict
        (m(requests=1, errors=1, reporting=1), GateResult.INCONCLUSIVE, "TooFewGatewaysReporting"),
        (m(waiting=1), GateResult.WAIT, "NotConverged"),
        (
            m(
                assigned=0,
                active=0,
                reporting=0,
                requests=0,
                errors=0,
                p95_samples=(),
                drift_max=None,
            ),
            GateResult.PASS,
            "NoGatewaysAssigned",
        ),
        (
            m(reporting=0, requests=0, errors=0, p95_samples=(), drift_max=None),
            GateResult.INCONCLUSIVE,
            "NoGatewayReporting",
        ),
        (m(reporting=8), GateResult.INCONCLUSIVE, "TooFewGatewaysReporting"),
        (m(reporting=9), GateResult.PASS, "GatesHeld"),
        (m(requests=99, errors=0), GateResult.INCONCLUSIVE, "TooFewRequests"),
    ],
)
def test_judge(measured: Measurement, result: GateResult, reason: str) -> None:
    verdict = judge(GATES, measured, T0)
    assert (verdict.result, verdict.reason) == (result, reason)
    assert verdict.evaluated_at == T0


def test_omitted_thresholds_are_off() -> None:
    measured = m(errors=999, p95_samples=((5000.0, 1000),), drift_max=1.0)
    assert judge(Gates(), measured, T0).result is GateResult.PASS


def test_measured_values_are_reported() -> None:
    v = judge(GATES, m(failed=1, active=9, reporting=9, errors=5), T0)
    assert (v.failed_gateways, v.error_rate, v.latency_p95_ms, v.drift_score) == (
        1,
        0.005,
        50.0,
        0.1,
    )
    assert (v.reporting_ratio, v.requests) == (1.0, 1000)


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ((), None),
        (((10.0, 1),), 10.0),
        (((10.0, 1), (20.0, 1), (30.0, 1)), 30.0),
        (tuple((float(i), 1) for i in range(1, 101)), 95.0),
        (((10.0, 990), (1000.0, 10)), 10.0),
        (((10.0, 900), (1000.0, 100)), 1000.0),
        (((10.0, 0), (20.0, 0)), 20.0),
    ],
)
def test_weighted_p95(samples: tuple[tuple[float, int], ...], expected: float | None) -> None:
    assert weighted_p95(samples) == expected


def _measure(*gws: object, step: int = 2) -> Measurement:
    r = release(status=rolling(step=step))
    return measure(r, gws, [r], T0 + timedelta(seconds=1))  # type: ignore[arg-type]


def test_measure_counts_only_reports_about_the_target() -> None:
    result = _measure(
        gateway("a", running="2.0.0"),
        gateway("b", running="1.0.0"),  # still on stable: waiting
        gateway("c", running="2.0.0", state=ModelStateKind.FAILED),
        gateway("d", running="0.5.0", state=ModelStateKind.FAILED),  # another version failed
        gateway("e", running="2.0.0", state=ModelStateKind.DOWNLOADING),
    )
    assert (result.assigned, result.active, result.failed, result.waiting) == (5, 1, 1, 3)
    assert result.reporting == 1 and result.requests == 1000


def test_stale_health_does_not_count_as_reporting() -> None:
    old = T0 - timedelta(minutes=30)
    result = _measure(gateway("a", running="2.0.0", report_at=old))
    assert (result.active, result.reporting) == (1, 0)


def test_unreachable_gateways_do_not_wait() -> None:
    gone = T0 - timedelta(hours=2)
    result = _measure(gateway("a", running="1.0.0", seen=gone), gateway("b", seen=None))
    assert (result.assigned, result.waiting) == (2, 0)


def test_cohorts_count_where_each_gateway_joins() -> None:
    result = _measure(*(gateway(f"gw-{i}", running="2.0.0") for i in range(300)), step=0)
    assert sum(c.assigned for c in result.cohorts) == 300
    assert result.assigned == result.cohorts[0].assigned
    assert result.cohorts[2].active == result.cohorts[2].assigned, "counts what runs, even ahead"
