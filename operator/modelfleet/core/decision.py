"""What ``decide()`` takes besides the release, and what it returns.

A :class:`Decision` is data only: the controller writes ``status`` (the JSON merge patch from
``previous`` is :func:`modelfleet.api.patch.status_patch`), records ``events``, looks again
after ``requeue_after`` and, when ``needs_verification`` is set, verifies the spec's artifact and
calls ``decide`` again with the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from modelfleet.core.checklist import ChecklistItem
from modelfleet.core.gates import DEFAULT_TUNING, Measurement, Tuning, measure
from modelfleet.core.gateway import Gateway
from modelfleet.core.tally import FleetTally
from modelfleet.core.types import QuerySample, Release, ReleaseStatus

NORMAL = "Normal"
WARNING = "Warning"


@dataclass(frozen=True, slots=True)
class Event:
    """A Kubernetes Event to record on the ModelRelease."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class FleetView:
    """What ``decide`` sees of the cluster: the gateways, and the releases (for conflicts)."""

    gateways: Sequence[Gateway] = ()
    """The namespace's gateways, walked once per decision (when there is no ``tally``)."""
    releases: Sequence[Release] = ()
    revocations: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """TrustPolicy name → its ``deniedDigests`` now (the controller watches TrustPolicies). A
    policy not listed is unknown: the ``revoked`` flags persisted in status stand."""
    checklists: Mapping[str, frozenset[ChecklistItem]] = field(default_factory=dict)
    """TrustPolicy name → the release checklist items it requires
    (``spec.releaseChecklist.required``); a policy not listed does not say, and
    ``default_checklist`` applies."""
    default_checklist: frozenset[ChecklistItem] = frozenset()
    """The cluster-wide release checklist (the operator's ``--release-checklist``)."""
    queries: Mapping[str, QuerySample | None] = field(default_factory=dict)
    """Query gate name → what the controller measured for the release being decided (from
    Prometheus); absent or None: no data, which is Inconclusive."""
    tally: FleetTally | None = None
    """The namespace's gateways with counts kept current by their events (the operator's
    gateway watch): measured from the counts instead of ``gateways`` (same figures, a cost
    proportional to what changed; :mod:`modelfleet.core.tally`)."""

    def measure(
        self, release: Release, now: datetime, tuning: Tuning = DEFAULT_TUNING
    ) -> Measurement:
        """The cohort counts and gate inputs of ``release`` (with the status it has now)."""
        if self.tally is not None:
            return self.tally.measure(release, self.releases, now, tuning)
        return measure(release, self.gateways, self.releases, now, tuning)

    def runs(self, model: str, version: str) -> bool:
        """Whether some gateway reports ``version`` of ``model``."""
        if self.tally is not None:
            return self.tally.runs(model, version)
        return any(
            (state := g.models.get(model)) is not None and state.version == version
            for g in self.gateways
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one ``decide`` call; applying it is the controller's job."""

    status: ReleaseStatus
    """The new status."""
    previous: ReleaseStatus
    """The status ``decide`` started from (the persisted one): what the write patches."""
    events: tuple[Event, ...] = ()
    requeue_after: timedelta | None = None
    """When a time-based rule (bake end, progress deadline, first-report grace) may fire next, if
    any: the operator decides again then, without waiting for its next timer tick."""
    needs_verification: bool = False
    """The phase is Verifying: verify the spec's artifact and call ``decide`` with the result."""
    measurement: Measurement = field(default_factory=Measurement)
