"""The counts of one release, moved by one gateway at a time (for :mod:`modelfleet.core.tally`).

:class:`ReleaseTally`: gateways per cohort step and the first step's recently seen ones;
:class:`TargetCounts`: for the release's ``target``, per step ``active``, ``failed`` and fresh
``reporting``, and for the gateways told ``target`` the fresh health figures (:class:`Health`)
and the reachable ones that do not run it yet. Each gateway's part is computed by the rules of
:func:`~modelfleet.core.gates.measure` (:class:`Share`). Pure: no I/O, no clock reads.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from datetime import datetime

from modelfleet.core.cohorts import CohortPlan
from modelfleet.core.gates import Tuning
from modelfleet.core.gateway import FAILED_STATES, Gateway, ModelStateKind
from modelfleet.core.versions import VersionSnapshot
from modelfleet.core.windows import Count, SortedWeights, Window

HealthFigures = tuple[int, int, float | None, float | None]
"""A fresh health report's (requests, errors, latencyP95Ms, driftScore)."""


class Health:
    """The aggregate of fresh health reports of the gateways told ``target``."""

    __slots__ = ("drift", "errors", "n", "p95", "requests")

    def __init__(self) -> None:
        self.n = self.requests = self.errors = 0
        self.p95 = SortedWeights()
        self.drift = SortedWeights()

    def add(self, payload: Hashable) -> None:
        requests, errors, p95, drift = _figures(payload)
        self.n += 1
        self.requests += requests
        self.errors += errors
        if p95 is not None:
            self.p95.add(p95, requests)
        if drift is not None:
            self.drift.add(drift, 0)

    def remove(self, payload: Hashable) -> None:
        requests, errors, p95, drift = _figures(payload)
        self.n -= 1
        self.requests -= requests
        self.errors -= errors
        if p95 is not None:
            self.p95.remove(p95, requests)
        if drift is not None:
            self.drift.remove(drift, 0)


def _figures(payload: Hashable) -> HealthFigures:
    assert isinstance(payload, tuple)
    return payload


def _ts(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


def seen_at(gateway: Gateway, model: str) -> float | None:
    """When ``gateway`` was last heard of for ``model``: its heartbeat or the latest end of a
    health window for the model (``checklist.recently_seen`` is ``seen_at > since``)."""
    times = [gateway.last_seen] if gateway.last_seen is not None else []
    times += [h.window_end for h in gateway.health if h.model == model and h.window_end]
    return max(times).timestamp() if times else None


class Share:
    """What one gateway contributes to the counts of one release's ``target``."""

    __slots__ = ("active", "failed", "fresh_at", "health", "waiting_at")

    def __init__(self, gateway: Gateway, model: str, target: VersionSnapshot) -> None:
        state = gateway.models.get(model)
        on_target = state is not None and state.is_version(target)
        self.active = on_target and state is not None and state.state is ModelStateKind.ACTIVE
        self.failed = on_target and state is not None and state.state in FAILED_STATES
        self.fresh_at: float | None = None
        self.health: HealthFigures | None = None
        report = gateway.health_for(model, target.version) if self.active else None
        if report is not None:
            self.fresh_at = _ts(report.window_end or gateway.last_seen)
            self.health = (
                report.requests, report.errors, report.latency_p95_ms, report.drift_score
            )  # fmt: skip
        quiet = not (self.active or self.failed)
        self.waiting_at = _ts(gateway.last_seen) if quiet else None


class TargetCounts:
    """The counts of one release about one ``target`` (see the module docstring)."""

    __slots__ = ("active", "failed", "health", "key", "reporting", "snap", "through", "waiting")

    def __init__(self, target: VersionSnapshot, steps: int, tuning: Tuning, through: int) -> None:
        self.snap = target
        self.key = (target.digest, target.version)
        self.active = [0] * steps
        self.failed = [0] * steps
        age = tuning.report_max_age.total_seconds()
        self.reporting = [Window(age, Count()) for _ in range(steps)]
        self.through = through
        self.health = Window(age, Health())
        self.waiting = Window(tuning.offline_after.total_seconds(), Count())

    def apply(self, share: Share, first: int, sign: int) -> None:
        self.active[first] += sign * share.active
        self.failed[first] += sign * share.failed
        told = first <= self.through
        move = Window.add if sign > 0 else Window.remove
        if share.fresh_at is not None:
            move(self.reporting[first], share.fresh_at)
            if told:
                move(self.health, share.fresh_at, share.health)
        if told and share.waiting_at is not None:
            move(self.waiting, share.waiting_at)

    def windows(self) -> Iterator[Window[Count] | Window[Health]]:
        yield from self.reporting
        yield self.health
        yield self.waiting


class ReleaseTally:
    """The counts of one release of a :class:`ModelGroup`."""

    __slots__ = ("assigned", "members", "model", "name", "plan", "seen", "target")

    def __init__(self, plan: CohortPlan, tuning: Tuning) -> None:
        self.plan = plan
        self.name = plan.release.name
        self.model = plan.release.spec.model
        self.assigned = [0] * len(plan.steps)
        self.seen = Window(tuning.report_max_age.total_seconds(), Count())
        self.target: TargetCounts | None = None
        self.members: dict[str, int] = {}
        """Gateway name → its first step, for the gateways this release alone covers."""

    def apply(self, gateway: Gateway, first: int, sign: int) -> None:
        self.assigned[first] += sign
        if sign > 0:
            self.members[gateway.name] = first
        else:
            self.members.pop(gateway.name, None)
        if first == 0:
            at = seen_at(gateway, self.model)
            if at is not None:
                (self.seen.add if sign > 0 else self.seen.remove)(at)
        if self.target is not None:
            self.target.apply(Share(gateway, self.model, self.target.snap), first, sign)
