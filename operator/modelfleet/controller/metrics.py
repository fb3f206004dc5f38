"""Prometheus metrics of the operator (served on ``--metrics-port``, also logged on exit).

:data:`API_WRITES` counts every write the operator issues to the API server, by kind: ``status``
(a ModelRelease status patch carrying a decision: phase, step, timestamps...), ``refresh`` (a
status patch updating measured values only, at most every ``--status-refresh`` seconds) and
``event`` (Kubernetes Events), ``lease`` (leader election: acquiring, renewing, releasing).
Decisions must not grow with the fleet size, since cohort membership is computed and never
written per gateway.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
    "Artifact verifications, by result (verified, rejected, error).",
    ["result"],
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

LEADER = Gauge(
    "modelfleet_operator_leader",
    "1 while this replica holds the leader-election Lease (or runs without election), else 0.",
)


def write_counts() -> dict[str, int]:
    """``{kind: count}`` of the API writes issued so far (for logs and tests)."""
    out: dict[str, int] = {}
    for metric in API_WRITES.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                out[sample.labels["kind"]] = int(sample.value)
    return out
