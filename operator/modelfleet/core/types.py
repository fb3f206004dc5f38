"""Typed, immutable views of ModelRelease spec/status and EdgeGateway state.

These are what the pure rollout code works on. ``modelfleet.api`` builds them from the dicts
the Kubernetes API returns; ``modelfleet.api.status`` turns a :class:`ReleaseStatus` back into a
status dict. Timestamps are timezone-aware UTC ``datetime`` values; durations are
``timedelta``. Field names follow the CRDs (camelCase there, snake_case here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from modelfleet.core.phases import Phase
from modelfleet.core.selectors import LabelSelector


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


class ModelStateKind(StrEnum):
    """A gateway's reported state for one model (EdgeGateway ``status.models[].state``)."""

    IDLE = "Idle"
    DOWNLOADING = "Downloading"
    DOWNLOADED = "Downloaded"
    VERIFYING = "Verifying"
    ACTIVATING = "Activating"
    ACTIVE = "Active"
    FAILED = "Failed"
    ROLLED_BACK = "RolledBack"


#: Reported states that count as a failure of the version they name.
FAILED_STATES: frozenset[ModelStateKind] = frozenset(
    {ModelStateKind.FAILED, ModelStateKind.ROLLED_BACK}
)


# --------------------------------------------------------------------------- versions


@dataclass(frozen=True, slots=True)
class Provenance:
    """What the verified provenance attestation says about the build."""

    predicate_type: str | None = None
    builder: str | None = None
    repo: str | None = None
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of verifying one artifact (``status.verification``).

    The controller builds this from the trust layer's result and hands it to ``decide``;
    ``digest`` says which artifact it is about, ``generation`` which spec generation asked.
    """

    verified: bool
    digest: str
    reason: str = ""
    model_digest: str | None = None
    """The signed model's manifest digest (model_signing's in-toto subject), if model-signed."""
    authority: str | None = None
    signer: str | None = None
    issuer: str | None = None
    key_id: str | None = None
    tlog_index: int | None = None
    integrated_time: str | None = None
    provenance: Provenance | None = None
    at: datetime | None = None
    generation: int | None = None


@dataclass(frozen=True, slots=True)
class VersionSnapshot:
    """One concrete, addressable version of a model (``status.stable`` / ``status.target``)."""

    version: str
    digest: str
    uri: str
    signature: str | None = None
    attestations: tuple[str, ...] = ()
    since: datetime | None = None
    verification: Verification | None = None
    revoked: bool = False
    """The TrustPolicy denies it now (``status.stable.revoked``, set by ``decide`` from the
    policy's ``deniedDigests``): it is told to no gateway, so none that does not run it already
    installs it (``desired_state``)."""

    def revoked_by(self, denied: frozenset[str]) -> bool:
        """Whether ``denied`` names this version's artifact digest or its model digest."""
        model = self.verification.model_digest if self.verification is not None else None
        return self.digest in denied or (model is not None and model in denied)

    def same_version(self, other: VersionSnapshot | None) -> bool:
        """Same version name and same bytes (what history and reports are matched on)."""
        return other is not None and (self.version, self.digest) == (other.version, other.digest)

    def same_artifact(self, other: VersionSnapshot | None) -> bool:
        """Same version, bytes, and signature/attestation locations (what a spec change is)."""
        return (
            other is not None
            and self.same_version(other)
            and (self.uri, self.signature, self.attestations)
            == (other.uri, other.signature, other.attestations)
        )


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

    def condition(self, type_: str) -> Condition | None:
        """The condition of that type, if present."""
        return next((c for c in self.conditions if c.type == type_), None)


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


# --------------------------------------------------------------------------- gateways


@dataclass(frozen=True, slots=True)
class ModelState:
    """A gateway's reported state for one model (EdgeGateway ``status.models[]``)."""

    model: str
    version: str | None = None
    digest: str | None = None
    state: ModelStateKind = ModelStateKind.IDLE
    slot: str | None = None
    message: str | None = None
    since: datetime | None = None

    def is_version(self, snap: VersionSnapshot) -> bool:
        """Whether this report is about ``snap`` (by digest when reported, else by version)."""
        if self.digest:
            return self.digest == snap.digest
        return self.version is not None and self.version == snap.version


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Aggregated health of one model version on one gateway (EdgeGateway ``status.health[]``)."""

    model: str
    version: str | None = None
    window: timedelta | None = None
    window_end: datetime | None = None
    requests: int = 0
    errors: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    drift_score: float | None = None


@dataclass(frozen=True, slots=True)
class Gateway:
    """An EdgeGateway: identity, labels (cohort membership) and what it reported."""

    name: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    models: Mapping[str, ModelState] = field(default_factory=dict)
    health: tuple[HealthReport, ...] = ()
    last_seen: datetime | None = None
    certificate_fingerprint: str | None = None
    agent_version: str | None = None

    def health_for(self, model: str, version: str) -> HealthReport | None:
        """The health report for ``model`` at ``version``, if any (the latest window wins)."""
        best: HealthReport | None = None
        for report in self.health:
            if (
                report.model == model
                and report.version == version
                and (best is None or (report.window_end or _MIN) > (best.window_end or _MIN))
            ):
                best = report
        return best


_MIN = datetime(1, 1, 1, tzinfo=UTC)
