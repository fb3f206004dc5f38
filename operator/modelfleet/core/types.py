"""Typed, immutable views of a ModelRelease: its spec, its status, its manual actions.

These are what the pure rollout code works on. ``modelfleet.api`` builds them from the dicts
the Kubernetes API returns; ``modelfleet.api.status`` turns a :class:`ReleaseStatus` back into a
status dict. The versions a release names are in :mod:`modelfleet.core.versions`, the
gateways it reaches in :mod:`modelfleet.core.gateway`. Timestamps are timezone-aware UTC
``datetime`` values; durations are ``timedelta``. Field names follow the CRDs (camelCase there,
snake_case here).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# Re-exported: api/edge.py and fleet/index.py import these two from here.
from modelfleet.core.checklist import ChecklistStatus
from modelfleet.core.gateway import Gateway as Gateway  # noqa: PLC0414
from modelfleet.core.gateway import ModelStateKind as ModelStateKind  # noqa: PLC0414
from modelfleet.core.phases import Phase
from modelfleet.core.selectors import LabelSelector
from modelfleet.core.versions import Verification, VersionSnapshot


class RollbackMode(StrEnum):
    """How a return to a previously stable version rolls out (``spec.rollout.rollback``)."""

    IMMEDIATE = "Immediate"
    """After verification, go to the last step (every gateway) at once; gates still watched."""
    PROGRESSIVE = "Progressive"
    """Roll out like any new version, cohort by cohort."""


class ActionKind(StrEnum):
    """One-shot manual actions (annotation ``modelfleet.dev/action``)."""

    PROMOTE = "promote"
    """Promote the current step now, skipping the rest of its bake and its gates."""
    ABORT = "abort"
    """Abort the rollout: every gateway goes back to ``stable``."""
    RETRY = "retry"
    """After Rejected or Aborted: verify the spec again and start over from step 0."""


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True, slots=True)
class Step:
    """One cumulative cohort: ``percent`` of the fleet by hash, or the gateways a selector picks."""

    name: str
    percent: int | None = None
    selector: LabelSelector | None = None
    bake: timedelta = timedelta(0)


@dataclass(frozen=True, slots=True)
class QueryGate:
    """One ``spec.rollout.gates.prometheus[]`` entry: a PromQL query and its bounds.

    Fails when some series stays above ``max`` (or below ``min``) for all of ``for_``; no data
    is Inconclusive, never a pass."""

    name: str
    query: str
    max: float | None = None
    min: float | None = None
    for_: timedelta = timedelta(0)


@dataclass(frozen=True, slots=True)
class QuerySample:
    """What the controller measured for one query gate (core never queries).

    ``high``: the highest value some series held throughout the gate's ``for`` window (the
    maximum over series of each series' minimum over the window); ``low``: the lowest value some
    series held throughout (minimum over series of each series' maximum). Without ``for`` both
    are the instant maximum and minimum over the series."""

    high: float
    low: float


@dataclass(frozen=True, slots=True)
class Gates:
    """Health gates (``spec.rollout.gates``); ``None`` means the check is off.

    Defaults when a field is omitted: no failed gateway tolerated, at least 90 % of the
    gateways told ``target`` must report health, no request minimum, no progress deadline.
    """

    max_failed_gateways: int = 0
    max_error_rate: float | None = None
    max_latency_p95_ms: float | None = None
    max_drift_score: float | None = None
    min_reporting_ratio: float = 0.9
    min_requests: int = 0
    progress_deadline: timedelta | None = None
    prometheus: tuple[QueryGate, ...] = ()


@dataclass(frozen=True, slots=True)
class Owner:
    """Who answers for a release (``spec.owner``): a person or team, and how to reach them
    during an incident (an e-mail address, a pager or chat handle, a URL)."""

    name: str
    contact: str


@dataclass(frozen=True, slots=True)
class ReleaseSpec:
    """``ModelRelease.spec``."""

    model: str
    version: str
    digest: str
    uri: str
    trust_policy: str
    steps: tuple[Step, ...]
    signature: str | None = None
    attestations: tuple[str, ...] = ()
    selector: LabelSelector | None = None
    gates: Gates = Gates()
    rollback: RollbackMode = RollbackMode.IMMEDIATE
    paused: bool = False
    salt: str | None = None
    owner: Owner | None = None

    def snapshot(self) -> VersionSnapshot:
        """The version this spec asks for (without verification or timestamps)."""
        return VersionSnapshot(
            version=self.version,
            digest=self.digest,
            uri=self.uri,
            signature=self.signature,
            attestations=self.attestations,
        )


# --------------------------------------------------------------------------- status


@dataclass(frozen=True, slots=True)
class Condition:
    """A kstatus-style condition (``status.conditions[]``)."""

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str = ""
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class CohortStatus:
    """Counts for the gateways that join at one step (``status.rollout.cohorts[]``)."""

    name: str
    assigned: int = 0
    active: int = 0
    failed: int = 0
    reporting: int = 0


class GateResult(StrEnum):
    """The outcome of one gate evaluation."""

    PASS = "Pass"
    """Converged and every threshold held on enough evidence."""
    FAIL = "Fail"
    """Too many failed gateways, or a health threshold exceeded: abort."""
    INCONCLUSIVE = "Inconclusive"
    """Not enough evidence (reporting ratio or requests too low): pause, never promote."""
    WAIT = "Wait"
    """Not converged yet: some reachable gateway told ``target`` does not run it yet."""


@dataclass(frozen=True, slots=True)
class GateStatus:
    """The last gate evaluation and what it measured (``status.rollout.gates``)."""

    result: GateResult
    reason: str
    failed_gateways: int = 0
    error_rate: float | None = None
    latency_p95_ms: float | None = None
    drift_score: float | None = None
    reporting_ratio: float | None = None
    requests: int = 0
    evaluated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    """Progress of the rollout (``status.rollout``): all the state time-based rules need."""

    step: int = 0
    step_name: str | None = None
    step_started_at: datetime | None = None
    converged_at: datetime | None = None
    healthy_since: datetime | None = None
    inconclusive_since: datetime | None = None
    last_action_id: str | None = None
    cohorts: tuple[CohortStatus, ...] = ()
    gates: GateStatus | None = None


@dataclass(frozen=True, slots=True)
class Source:
    """Where the spec came from in Git (``status.source``)."""

    repo_url: str | None = None
    revision: str | None = None
    path: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One finished (or ended) rollout (``status.history[]``), newest last."""

    version: str
    digest: str
    outcome: str  # Succeeded | Aborted | Rejected | Superseded | Reverted
    revision: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str | None = None
    model_digest: str | None = None
    """The model digest the version verified as, when it did (revoking its artifact digest
    later also refuses this model repacked)."""


@dataclass(frozen=True, slots=True)
class ReleaseStatus:
    """``ModelRelease.status`` (empty for a release never reconciled: phase Pending)."""

    phase: Phase = Phase.PENDING
    observed_generation: int | None = None
    reason: str | None = None
    message: str | None = None
    conditions: tuple[Condition, ...] = ()
    stable: VersionSnapshot | None = None
    target: VersionSnapshot | None = None
    verification: Verification | None = None
    rollout: RolloutStatus = RolloutStatus()
    source: Source | None = None
    history: tuple[HistoryEntry, ...] = ()
    checklist: ChecklistStatus | None = None
    """The release checklist as evaluated when ``target`` was to go live (kept while it rolls
    out and after, as the record of what held; cleared by a new verification)."""

    def condition(self, type_: str) -> Condition | None:
        """The condition of that type, if present."""
        return next((c for c in self.conditions if c.type == type_), None)

    def model_digests(self) -> dict[str, str]:
        """Artifact digest → model digest, for every version this release verified and
        remembers (stable, target, last verification, history): a denied artifact digest then
        also refuses its model repacked into other bytes."""
        known: dict[str, str] = {}
        verifications = [self.verification]
        verifications += [s.verification for s in (self.stable, self.target) if s is not None]
        for v in verifications:
            if v is not None and v.model_digest:
                known[v.digest] = v.model_digest
        for h in self.history:
            if h.model_digest:
                known.setdefault(h.digest, h.model_digest)
        return known


#: Prefix of the id given to an action annotated without ``modelfleet.dev/action-id``.
GENERATED_ACTION_ID = "auto:"


@dataclass(frozen=True, slots=True)
class Action:
    """A one-shot manual action, from annotations ``modelfleet.dev/action`` and ``action-id``.

    Without an ``action-id`` the id is ``auto:<action>``: the action runs once while the
    annotation stays, and runs again after the annotation was removed (and the operator saw it
    go) and added back. ``kind`` is ``None`` for an action name modelfleet does not know; such
    an action is ignored with an ``ActionIgnored`` event, once per id.
    """

    kind: ActionKind | None
    id: str
    name: str = ""
    """The action as annotated (what an unknown action is called in the event)."""

    @property
    def generated_id(self) -> bool:
        """Whether the id was generated (no ``modelfleet.dev/action-id`` annotation)."""
        return self.id.startswith(GENERATED_ACTION_ID)


@dataclass(frozen=True, slots=True)
class Release:
    """A whole ModelRelease: identity, spec, status, and the metadata rules depend on."""

    name: str
    namespace: str
    spec: ReleaseSpec
    status: ReleaseStatus = ReleaseStatus()
    generation: int = 1
    action: Action | None = None
    source: Source | None = None

    @property
    def salt(self) -> str:
        """Cohort hashing salt: ``spec.rollout.salt`` or ``namespace/model``."""
        return self.spec.salt if self.spec.salt else f"{self.namespace}/{self.spec.model}"
