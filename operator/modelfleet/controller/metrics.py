"""Prometheus metrics of the operator (served on ``--metrics-port``, also logged on exit).

:data:`API_WRITES` counts every write the operator issues to the API server, by kind: ``status``
(a ModelRelease status patch carrying a decision: phase, step, timestamps...), ``refresh`` (a
status patch updating measured values only, at most every ``--status-refresh`` seconds) and
``event`` (Kubernetes Events), ``lease`` (leader election: acquiring, renewing, releasing).
Decisions must not grow with the fleet size, since cohort membership is computed and never
written per gateway.

Label sets stay bounded: per-release series carry ``namespace`` and ``release`` (a few releases
per namespace), fleet-wide series carry model, version and state, never a gateway name.
:func:`observe_release` (every decision) and :func:`phase_changed` (every stored phase change)
feed the release series from what ``decide`` returned; :class:`FleetCollector` counts the
operator's gateway index at scrape time, so the fleet costs nothing between scrapes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from modelfleet.core import Release, ReleaseStatus
from modelfleet.core.decision import FleetView
from modelfleet.core.phases import Phase
from modelfleet.core.tally import FleetTally
from modelfleet.core.types import QuerySample

API_WRITES = Counter(
    "modelfleet_operator_api_writes",
    "Writes issued by the operator to the Kubernetes API server, by kind.",
    ["kind"],
)
RECONCILES = Counter(
    "modelfleet_operator_reconciles",
    "ModelRelease reconciliations, by trigger (timer, event, policy) and outcome.",
    ["trigger", "outcome"],
)
RECONCILE_SECONDS = Histogram(
    "modelfleet_operator_reconcile_seconds",
    "Time of one ModelRelease reconciliation (without artifact verification).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
VERIFICATIONS = Counter(
    "modelfleet_operator_verifications",
    "Artifact verifications, by result (verified, rejected, error) and check: the check that "
    "refused the artifact (digest, signature, provenance...), 'none' when verified.",
    ["result", "check"],
)
PHASE_CHANGES = Counter(
    "modelfleet_operator_phase_changes",
    "ModelRelease phase changes decided by the operator, by new phase.",
    ["phase"],
)
INDEXED_GATEWAYS = Gauge(
    "modelfleet_operator_indexed_gateways",
    "EdgeGateways currently held in the operator's index.",
)
RELEASE_PHASE = Gauge(
    "modelfleet_operator_release_phase",
    "1 for the current phase of each ModelRelease, 0 for the other phases.",
    ["namespace", "release", "phase"],
)
RELEASE_STEP = Gauge(
    "modelfleet_operator_release_step",
    "Index of the current rollout step (0 = first) of each ModelRelease.",
    ["namespace", "release"],
)
RELEASE_STEPS = Gauge(
    "modelfleet_operator_release_steps",
    "Number of rollout steps in each ModelRelease's spec.",
    ["namespace", "release"],
)
RELEASE_STEP_STARTED = Gauge(
    "modelfleet_operator_release_step_started_timestamp_seconds",
    "When the current rollout step started (Unix time; 0 when no step runs).",
    ["namespace", "release"],
)
COHORT_GATEWAYS = Gauge(
    "modelfleet_operator_cohort_gateways",
    "Gateways per cohort of each ModelRelease, by count (assigned, active, failed, reporting).",
    ["namespace", "release", "cohort", "count"],
)
GATE_EVALUATIONS = Counter(
    "modelfleet_operator_gate_evaluations",
    "Gate evaluations of the cohorts told the target version, by result "
    "(Pass, Fail, Inconclusive, Wait).",
    ["namespace", "release", "result"],
)
GATE_VALUE = Gauge(
    "modelfleet_operator_gate_value",
    "The last measured value of each gate (failed_gateways, error_rate, latency_p95_seconds, "
    "drift_score, reporting_ratio, requests).",
    ["namespace", "release", "gate"],
)
GATE_THRESHOLD = Gauge(
    "modelfleet_operator_gate_threshold",
    "The threshold of each gate set in spec.rollout.gates (max_* are upper, min_* lower bounds).",
    ["namespace", "release", "gate"],
)
TIME_TO_ABORT = Histogram(
    "modelfleet_operator_time_to_abort_seconds",
    "From the start of a version's rollout to its abort.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
TIME_TO_ROLLBACK = Histogram(
    "modelfleet_operator_time_to_rollback_seconds",
    "From an abort to the moment no gateway runs the aborted version any more.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600),
)
SILENT_AFTER_SECONDS = 300.0
"""A gateway not seen for longer than this counts in ``modelfleet_operator_gateways_silent``."""

_PER_RELEASE = (RELEASE_PHASE, RELEASE_STEP, RELEASE_STEPS, RELEASE_STEP_STARTED)
_PER_RELEASE_EXTRA = (COHORT_GATEWAYS, GATE_EVALUATIONS, GATE_VALUE, GATE_THRESHOLD)


@dataclass
class _Aborted:
    version: str
    at: float  # Unix time


_aborted: dict[tuple[str, str], _Aborted] = {}

LEADER = Gauge(
    "modelfleet_operator_leader",
    "1 while this replica holds the leader-election Lease (or runs without election), else 0.",
)


def count_write(kind: str) -> None:
    """Count one write of ``kind`` (the :class:`~modelfleet.kube.KubeClient` ``on_write`` hook)."""
    API_WRITES.labels(kind=kind).inc()


def write_counts() -> dict[str, int]:
    """``{kind: count}`` of the API writes issued so far (for logs and tests)."""
    out: dict[str, int] = {}
    for metric in API_WRITES.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                out[sample.labels["kind"]] = int(sample.value)
    return out


def verification(result: str, check: str = "none") -> None:
    """Count one verification (``check``: the failed check of a rejection or an error)."""
    VERIFICATIONS.labels(result=result, check=check).inc()


def _unix(at: datetime | None) -> float:
    return at.timestamp() if at is not None else 0.0


#: The built-in gates as metrics: (figure, bound, ``spec.rollout.gates`` attribute,
#: ``status.rollout.gates`` attribute, divisor to the metric's unit). The threshold series is
#: ``<bound>_<figure>``, the measured one ``<figure>``.
_GATE_FIGURES: tuple[tuple[str, str, str, str, float], ...] = (
    ("failed_gateways", "max", "max_failed_gateways", "failed_gateways", 1),
    ("error_rate", "max", "max_error_rate", "error_rate", 1),
    ("latency_p95_seconds", "max", "max_latency_p95_ms", "latency_p95_ms", 1000),
    ("drift_score", "max", "max_drift_score", "drift_score", 1),
    ("reporting_ratio", "min", "min_reporting_ratio", "reporting_ratio", 1),
    ("requests", "min", "min_requests", "requests", 1),
)


def observe_release(
    release: Release, status: ReleaseStatus, fleet: FleetView, now: datetime
) -> None:
    """Set the per-release series from a decision's ``status``; finish a rollback timer when
    no gateway of the fleet runs the aborted version any more."""
    ns, name = release.namespace, release.name
    for phase in Phase:
        RELEASE_PHASE.labels(ns, name, phase.value).set(1.0 if status.phase == phase else 0.0)
    rollout = status.rollout
    RELEASE_STEP.labels(ns, name).set(rollout.step)
    RELEASE_STEPS.labels(ns, name).set(len(release.spec.steps))
    RELEASE_STEP_STARTED.labels(ns, name).set(_unix(rollout.step_started_at))
    for cohort in rollout.cohorts:
        for count in ("assigned", "active", "failed", "reporting"):
            COHORT_GATEWAYS.labels(ns, name, cohort.name, count).set(getattr(cohort, count))
    gates, measured = release.spec.gates, rollout.gates
    if measured is not None:
        GATE_EVALUATIONS.labels(ns, name, measured.result.value).inc()
    for figure, bound, limit, value, divisor in _GATE_FIGURES:
        threshold = getattr(gates, limit)
        if threshold is not None:
            GATE_THRESHOLD.labels(ns, name, f"{bound}_{figure}").set(threshold / divisor)
        got = None if measured is None else getattr(measured, value)
        if got is not None:
            GATE_VALUE.labels(ns, name, figure).set(got / divisor)
    pending = _aborted.get((ns, name))
    if pending is not None:
        if status.phase != Phase.ABORTED:
            del _aborted[(ns, name)]  # retried or superseded before the fleet went back
        elif not fleet.runs(release.spec.model, pending.version):
            TIME_TO_ROLLBACK.observe(max(0.0, now.timestamp() - pending.at))
            del _aborted[(ns, name)]


def observe_queries(release: Release, samples: Mapping[str, QuerySample | None]) -> None:
    """Set the query gates' figures (``gate="query:<name>"``; no data leaves the last value)."""
    ns, name = release.namespace, release.name
    for gate in release.spec.gates.prometheus:
        label = f"query:{gate.name}"
        if gate.max is not None:
            GATE_THRESHOLD.labels(ns, name, label + ":max").set(gate.max)
        if gate.min is not None:
            GATE_THRESHOLD.labels(ns, name, label + ":min").set(gate.min)
        sample = samples.get(gate.name)
        if sample is not None:
            GATE_VALUE.labels(ns, name, label + ":high").set(sample.high)
            GATE_VALUE.labels(ns, name, label + ":low").set(sample.low)


def phase_changed(release: Release, new: ReleaseStatus, now: datetime) -> None:
    """A phase change was stored: count it; on an abort, observe the time to abort and start
    the rollback timer."""
    PHASE_CHANGES.labels(phase=new.phase.value).inc()
    if new.phase != Phase.ABORTED:
        return
    old = release.status
    target = old.target
    if target is None:
        return
    started = target.since or old.rollout.step_started_at
    if started is not None:
        TIME_TO_ABORT.observe(max(0.0, (now - started).total_seconds()))
    _aborted[(release.namespace, release.name)] = _Aborted(target.version, now.timestamp())


def forget_release(namespace: str, name: str) -> None:
    """Drop the series of a deleted release (label sets stay bounded by the live releases)."""
    _aborted.pop((namespace, name), None)
    for gauge in _PER_RELEASE:
        _remove_matching(gauge, namespace, name)
    for metric in _PER_RELEASE_EXTRA:
        _remove_matching(metric, namespace, name)


def _remove_matching(metric: Gauge | Counter, namespace: str, name: str) -> None:
    for family in metric.collect():
        seen: set[tuple[str, ...]] = set()
        for sample in family.samples:
            labels = sample.labels
            if labels.get("namespace") == namespace and labels.get("release") == name:
                key = tuple(labels[n] for n in metric._labelnames)
                if key not in seen:
                    seen.add(key)
                    metric.remove(*key)


class GatewaySource(Protocol):
    """What :class:`FleetCollector` reads: the operator's gateway index."""

    def namespaces(self) -> Sequence[str]: ...

    def tally(self, namespace: str) -> FleetTally: ...


class FleetCollector(Collector):
    """Gateways per model, version and reported state, and silent gateways, per namespace,
    read from the gateway index's counts when Prometheus scrapes (no gateway name as a label;
    no walk over the gateways)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._source: GatewaySource | None = None
        self._clock = clock

    def track(self, source: GatewaySource) -> None:
        self._source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        models = GaugeMetricFamily(
            "modelfleet_operator_gateway_models",
            "Gateways per namespace, model, version and reported state.",
            labels=["namespace", "model", "version", "state"],
        )
        silent = GaugeMetricFamily(
            "modelfleet_operator_gateways_silent",
            f"Gateways not seen for more than {SILENT_AFTER_SECONDS:g}s (or never), per namespace.",
            labels=["namespace"],
        )
        total = GaugeMetricFamily(
            "modelfleet_operator_gateways", "Gateways per namespace.", labels=["namespace"]
        )
        source = self._source
        if source is not None:
            now = self._clock()
            for ns in source.namespaces():
                tally = source.tally(ns)
                for (model, version, kind), n in sorted(tally.states().items()):
                    models.add_metric([ns, model, version, kind], n)
                silent.add_metric([ns], tally.silent(now))
                total.add_metric([ns], len(tally))
        yield models
        yield silent
        yield total


FLEET = FleetCollector()
REGISTRY.register(FLEET)
