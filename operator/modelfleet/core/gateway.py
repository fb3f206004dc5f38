"""Typed, immutable view of an EdgeGateway: identity, labels and what it reported.

``modelfleet.api.gateway`` builds it from the EdgeGateway dict the fleet API writes; cohorts,
gates and ``desired_state`` read it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from modelfleet.core.versions import VersionSnapshot


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


_NO_LABELS: Mapping[str, str] = {}
_WINDOWS: dict[timedelta, timedelta] = {}


def _s(text: str | None) -> str | None:
    return None if text is None else sys.intern(text)


def compact(gateway: Gateway) -> Gateway:
    """An equal gateway that shares its repeated parts: interned strings (a fleet repeats the
    same names of models, versions, digests, slots and agent versions), one empty label map and
    one object per health window length. About halves what a parsed gateway keeps in memory,
    for gateways held by the thousand (``FleetTally``). Nothing is shared that is mutable."""
    windows = _WINDOWS if len(_WINDOWS) < 64 else {}
    return Gateway(
        name=sys.intern(gateway.name),
        namespace=sys.intern(gateway.namespace),
        labels=gateway.labels or _NO_LABELS,
        models={
            sys.intern(model): ModelState(
                sys.intern(s.model),
                _s(s.version),
                _s(s.digest),
                s.state,
                _s(s.slot),
                s.message,
                s.since,
            )
            for model, s in gateway.models.items()
        },
        health=tuple(
            HealthReport(
                sys.intern(h.model),
                _s(h.version),
                None if h.window is None else windows.setdefault(h.window, h.window),
                h.window_end,
                h.requests,
                h.errors,
                h.latency_p50_ms,
                h.latency_p95_ms,
                h.drift_score,
            )
            for h in gateway.health
        ),
        last_seen=gateway.last_seen,
        certificate_fingerprint=gateway.certificate_fingerprint,
        agent_version=_s(gateway.agent_version),
    )
