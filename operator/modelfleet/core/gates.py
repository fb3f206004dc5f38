"""Health gates: count what the gateways told ``target`` report, and judge the current step.

:func:`measure` walks the fleet once (O(gateways)) through the same :class:`Assigner` the fleet
API uses, so a gateway counts for a release exactly when it is told that release's ``target``.
It yields per-cohort counts for ``status.rollout.cohorts`` and the totals the gates need.
:func:`judge` turns the totals into Pass / Fail / Inconclusive / Wait, in this order:

1. **Fail** when more gateways report ``Failed``/``RolledBack`` *for the target* than
   ``maxFailedGateways``;
2. **Fail** when, on enough evidence (at least ``minRequests`` requests, and at least one),
   the request-weighted error rate exceeds ``maxErrorRate``, the latency figure exceeds
   ``maxLatencyP95Ms`` or the highest drift score exceeds ``maxDriftScore``;
3. **Fail** when a query gate (``gates.prometheus[]``) measured a series above its ``max`` or
   below its ``min`` throughout its ``for`` window (the controller queries Prometheus and hands
   the figures in as :class:`QuerySample` data; core only judges them);
4. **Wait** while some *reachable* gateway told ``target`` does not run it yet (neither Active
   nor failed on it); unreachable gateways (not seen for ``offline_after``) do not hold a step
   back but count as not reporting;
5. **Inconclusive** when a query gate has no data (no series, or Prometheus unreachable), even
   for an empty cohort: a query gate never passes on silence;
6. **Pass** when no gateway is told ``target`` at this step (an empty cohort exposes nobody);
7. **Inconclusive** when no gateway reports, when fewer than ``minReportingRatio`` of the
   gateways told ``target`` (failed ones excepted) report fresh health for it, or when fewer than
   ``minRequests`` requests were served: never promote on silence;
8. **Pass** otherwise.

Only reports about the target (state by digest, health by version) count; reports about any
other version are ignored. A health report is fresh when its window ended no more than
``report_max_age`` ago. ``latencyP95Ms`` is the request-weighted 95th percentile of the
per-gateway p95 values (the maximum for small cohorts, robust to one slow device in large ones);
``errorRate`` is total errors over total requests; ``driftScore`` is the maximum.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from modelfleet.core.checklist import Coverage, recently_seen
from modelfleet.core.cohorts import CohortPlan
from modelfleet.core.desired import Assigner, Role
from modelfleet.core.gateway import FAILED_STATES, Gateway, ModelStateKind
from modelfleet.core.times import format_duration
from modelfleet.core.types import (
    CohortStatus,
    GateResult,
    Gates,
    GateStatus,
    QueryGate,
    QuerySample,
    Release,
)


@dataclass(frozen=True, slots=True)
class Tuning:
    """Knobs that are operator settings rather than part of a release spec."""

    offline_after: timedelta = timedelta(minutes=5)
    """A gateway not seen for this long does not hold convergence back."""
    report_max_age: timedelta = timedelta(minutes=10)
    """A health report whose window ended longer ago than this does not count as reporting."""
    history_limit: int = 20
    """How many ``status.history`` entries are kept (oldest dropped first)."""
    report_interval: timedelta = timedelta(seconds=60)
    """How often gateways send a health window (the agents' ``reportInterval``)."""

    @property
    def first_report_grace(self) -> timedelta:
        """How long a freshly converged step waits for its first health reports before missing
        evidence counts as Inconclusive: two report intervals (one window to fill, and up to one
        more for the agent's timer and the fleet API's coalescing to deliver it)."""
        return 2 * self.report_interval


DEFAULT_TUNING = Tuning()


@dataclass(slots=True)
class _Tally:
    assigned: int = 0
    active: int = 0
    failed: int = 0
    reporting: int = 0


@dataclass(frozen=True, slots=True)
class Measurement:
    """What one walk over the fleet found for one release."""

    cohorts: tuple[CohortStatus, ...] = ()
    assigned: int = 0
    """Gateways told ``target`` now (cumulative cohorts up to the current step)."""
    active: int = 0
    failed: int = 0
    reporting: int = 0
    waiting: int = 0
    """Reachable gateways told ``target`` that neither run it nor failed on it yet."""
    requests: int = 0
    errors: int = 0
    p95_samples: tuple[tuple[float, int], ...] = ()
    latency_p95: float | None = None
    """The request-weighted p95 of the samples, when they are not carried (``FleetTally``)."""
    drift_max: float | None = None
    conflicted: int = 0
    """Gateways this release covers that another release of the same model covers too."""
    conflicts_with: tuple[str, ...] = field(default=())
    first_cohort: Coverage = field(default_factory=Coverage)
    """Gateways of the first step, and how many of them reported recently (heartbeat or health
    for the model, whatever version): the release checklist's telemetry coverage."""


# Complexity waiver: one branch per gate metric and verdict, read as the gate table.
def measure(  # noqa: PLR0912, PLR0915
    release: Release,
    gateways: Iterable[Gateway],
    others: Iterable[Release],
    now: datetime,
    tuning: Tuning = DEFAULT_TUNING,
) -> Measurement:
    """Count cohorts and gate inputs for ``release`` (with the status it has *now*).

    ``others`` are the other releases of the namespace (for conflicts; ``release`` itself, if
    present, is replaced by the given one).
    """
    key = (release.namespace, release.name)
    assigner = Assigner([release, *(r for r in others if (r.namespace, r.name) != key)])
    plan = CohortPlan.of(release)
    model = release.spec.model
    target = release.status.target
    tallies = [_Tally() for _ in plan.steps]
    conflicted = 0
    conflicts_with: set[str] = set()
    waiting = requests = errors = first_seen = 0
    told = _Tally()
    p95: list[tuple[float, int]] = []
    drift: float | None = None
    stale_before = now - tuning.report_max_age
    offline_before = now - tuning.offline_after
    for gw in gateways:
        a = assigner.assignment(gw, model)
        if a is None:
            continue
        if a.conflict:
            if release.name in a.conflict:
                conflicted += 1
                conflicts_with.update(n for n in a.conflict if n != release.name)
            continue
        if a.release != release.name:
            continue
        first = a.first_step
        if first is None:
            continue
        tally = tallies[first]
        tally.assigned += 1
        if first == 0:
            first_seen += recently_seen(gw, model, stale_before)
        if target is None:
            continue
        state = gw.models.get(model)
        on_target = state is not None and state.is_version(target)
        is_active = on_target and state is not None and state.state is ModelStateKind.ACTIVE
        is_failed = on_target and state is not None and state.state in FAILED_STATES
        health = gw.health_for(model, target.version) if is_active else None
        fresh = (
            health is not None
            and (health.window_end or gw.last_seen or stale_before) > stale_before
        )
        tally.active += is_active
        tally.failed += is_failed
        tally.reporting += fresh
        if a.role is not Role.TARGET:
            continue
        told.assigned += 1
        told.active += is_active
        told.failed += is_failed
        if not (is_active or is_failed) and gw.last_seen is not None:
            waiting += gw.last_seen > offline_before
        if fresh and health is not None:
            told.reporting += 1
            requests += health.requests
            errors += health.errors
            if health.latency_p95_ms is not None:
                p95.append((health.latency_p95_ms, health.requests))
            if health.drift_score is not None:
                drift = health.drift_score if drift is None else max(drift, health.drift_score)
    return Measurement(
        cohorts=tuple(
            CohortStatus(step.name, t.assigned, t.active, t.failed, t.reporting)
            for step, t in zip(plan.steps, tallies, strict=True)
        ),
        assigned=told.assigned,
        active=told.active,
        failed=told.failed,
        reporting=told.reporting,
        waiting=waiting,
        requests=requests,
        errors=errors,
        p95_samples=tuple(p95),
        drift_max=drift,
        conflicted=conflicted,
        conflicts_with=tuple(sorted(conflicts_with)),
        first_cohort=Coverage(tallies[0].assigned if tallies else 0, first_seen),
    )


def weighted_p95(samples: Iterable[tuple[float, int]]) -> float | None:
    """The request-weighted 95th percentile of per-gateway p95 values (``None``: no samples)."""
    ordered = sorted(samples)
    if not ordered:
        return None
    weights = [max(w, 0) for _, w in ordered]
    total = sum(weights)
    if total == 0:
        weights, total = [1] * len(ordered), len(ordered)
    threshold = 0.95 * total
    running = 0
    for (value, _), weight in zip(ordered, weights, strict=True):
        running += weight
        if running >= threshold:
            return value
    return ordered[-1][0]


def query_failure(gate: QueryGate, sample: QuerySample | None) -> str | None:
    """Why ``gate`` fails on ``sample`` (None: it holds, or there is no data)."""
    if sample is None:
        return None
    held = f" for {format_duration(gate.for_)}" if gate.for_ else ""
    if gate.max is not None and sample.high > gate.max:
        return f"query gate {gate.name}: {sample.high:.6g} above max {gate.max:g}{held}"
    if gate.min is not None and sample.low < gate.min:
        return f"query gate {gate.name}: {sample.low:.6g} below min {gate.min:g}{held}"
    return None


# Complexity waiver: one branch per gate metric and verdict, read as the gate table.
def judge(  # noqa: PLR0911, PLR0912
    gates: Gates,
    m: Measurement,
    now: datetime,
    queries: Mapping[str, QuerySample | None] | None = None,
) -> GateStatus:
    """The gate verdict for measurement ``m`` and the query gates' ``queries`` (gate name →
    sample; absent: no data), in the order of the module docstring."""
    queries = queries or {}
    error_rate = m.errors / m.requests if m.requests else None
    latency = weighted_p95(m.p95_samples) if m.p95_samples else m.latency_p95
    expected = m.assigned - m.failed
    ratio = m.reporting / expected if expected > 0 else None

    def verdict(result: GateResult, reason: str) -> GateStatus:
        return GateStatus(
            result=result,
            reason=reason,
            failed_gateways=m.failed,
            error_rate=None if error_rate is None else round(error_rate, 6),
            latency_p95_ms=latency,
            drift_score=m.drift_max,
            reporting_ratio=None if ratio is None else round(ratio, 4),
            requests=m.requests,
            evaluated_at=now,
        )

    if m.failed > gates.max_failed_gateways:
        return verdict(GateResult.FAIL, "TooManyFailedGateways")
    if m.reporting and m.requests >= max(gates.min_requests, 1):
        if (
            gates.max_error_rate is not None
            and error_rate is not None
            and error_rate > gates.max_error_rate
        ):
            return verdict(GateResult.FAIL, "ErrorRateExceeded")
        if (
            gates.max_latency_p95_ms is not None
            and latency is not None
            and latency > gates.max_latency_p95_ms
        ):
            return verdict(GateResult.FAIL, "LatencyP95Exceeded")
        if (
            gates.max_drift_score is not None
            and m.drift_max is not None
            and m.drift_max > gates.max_drift_score
        ):
            return verdict(GateResult.FAIL, "DriftScoreExceeded")
    for gate in gates.prometheus:
        if query_failure(gate, queries.get(gate.name)) is not None:
            return verdict(GateResult.FAIL, "QueryGateFailed")
    if m.waiting:
        return verdict(GateResult.WAIT, "NotConverged")
    if any(queries.get(gate.name) is None for gate in gates.prometheus):
        return verdict(GateResult.INCONCLUSIVE, "QueryNoData")
    if m.assigned == 0:
        return verdict(GateResult.PASS, "NoGatewaysAssigned")
    if not m.reporting or ratio is None:
        return verdict(GateResult.INCONCLUSIVE, "NoGatewayReporting")
    if ratio < gates.min_reporting_ratio:
        return verdict(GateResult.INCONCLUSIVE, "TooFewGatewaysReporting")
    if m.requests < gates.min_requests:
        return verdict(GateResult.INCONCLUSIVE, "TooFewRequests")
    return verdict(GateResult.PASS, "GatesHeld")


# Complexity waiver: one branch per gate metric and verdict, read as the gate table.
def explain(  # noqa: PLR0911
    gates: Gates,
    status: GateStatus,
    m: Measurement,
    queries: Mapping[str, QuerySample | None] | None = None,
) -> str:
    """A one-line, human explanation of a verdict, with the figures that decided it."""
    reason = status.reason
    queries = queries or {}
    if reason == "QueryGateFailed":
        why = (query_failure(g, queries.get(g.name)) for g in gates.prometheus)
        return next((w for w in why if w is not None), "a query gate failed")
    if reason == "QueryNoData":
        empty = [g.name for g in gates.prometheus if queries.get(g.name) is None]
        return f"no data for query gate(s) {', '.join(empty)} (never a pass on silence)"
    if reason == "TooManyFailedGateways":
        return f"{m.failed} gateways failed on the target (at most {gates.max_failed_gateways})"
    if reason == "ErrorRateExceeded":
        return (
            f"error rate {status.error_rate:.4g} over {m.requests} requests exceeds "
            f"{gates.max_error_rate}"
        )
    if reason == "LatencyP95Exceeded":
        return f"latency p95 {status.latency_p95_ms:g} ms exceeds {gates.max_latency_p95_ms:g} ms"
    if reason == "DriftScoreExceeded":
        return f"drift score {status.drift_score:g} exceeds {gates.max_drift_score:g}"
    if reason == "NotConverged":
        return f"{m.waiting} of {m.assigned} gateways told the target do not run it yet"
    if reason == "NoGatewaysAssigned":
        return "no gateway is in the cohorts reached so far"
    if reason == "NoGatewayReporting":
        return f"none of {m.assigned} gateways told the target reports health for it"
    if reason == "TooFewGatewaysReporting":
        return (
            f"{m.reporting} of {m.assigned - m.failed} gateways report health "
            f"(ratio {status.reporting_ratio}, need {gates.min_reporting_ratio})"
        )
    if reason == "TooFewRequests":
        return f"{m.requests} requests served, need {gates.min_requests}"
    return (
        f"{m.reporting} of {m.assigned} gateways reporting, {m.requests} requests, "
        f"error rate {status.error_rate}, p95 {status.latency_p95_ms} ms"
    )
