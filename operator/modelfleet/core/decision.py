"""What ``decide()`` takes besides the release, and what it returns.

A :class:`Decision` is data only: the controller writes ``status`` (the JSON merge patch from
``previous`` is :func:`modelfleet.api.patch.status_patch`), records ``events``, looks again
after ``requeue_after`` and, when ``needs_verification`` is set, verifies the spec's artifact and
calls ``decide`` again with the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from modelfleet.core.checklist import ChecklistItem
from modelfleet.core.gates import Measurement
from modelfleet.core.gateway import Gateway
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
