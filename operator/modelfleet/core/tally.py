"""Incremental fleet counts: what :func:`~modelfleet.core.gates.measure` finds, kept current by
gateway events instead of a walk over the fleet on every decision.

A :class:`FleetTally` holds the gateways of one namespace. The controller feeds it every
EdgeGateway added, modified or deleted (:meth:`FleetTally.put`, :meth:`FleetTally.drop`); each
event moves the counts it touches, once per release model group of the namespace. A decision
reads them (:meth:`FleetTally.measure`, through :attr:`FleetView.tally
<modelfleet.core.decision.FleetView.tally>`), with exactly the rules of ``measure``:

* per release (one :class:`ModelGroup` per model, for conflicts): gateways per cohort step
  (``assigned``), conflicted gateways per set of covering releases, and, for the release's
  ``target``, per step ``active``, ``failed`` and fresh ``reporting``;
* for the gateways told ``target`` (the steps up to ``status.rollout.step``): fresh health
  (requests, errors, the request-weighted p95, the highest drift score) and the reachable
  gateways that do not run it yet (``waiting``);
* the first step's recently seen gateways (the release checklist's telemetry coverage);
* per namespace, gateways per model, version and reported state, and when each was last seen
  (the operator's fleet metrics; "does any gateway still run the aborted version").

Time-based rules (fresh health, reachable, recently seen) are :class:`~modelfleet.core.windows.
Window` s: an item expires when ``now`` passes its time plus the age, at the cost of the items
that expire. What a decision costs is therefore what changed since the last one: a report moves
one gateway's counts, a tick with no report moves none. A change of what is counted does cost a
walk over the namespace's gateways, once: a new release or target, a changed selector or step
list, another release of the model appearing or leaving (a new group), a new step
(``retell``), and a ``now`` earlier than the last one. Which gateway is told which version is
not kept here: ``desired_state`` still decides per gateway, exactly.

Pure: no I/O, no clock reads; ``now`` is an argument.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from datetime import datetime

from modelfleet.core.checklist import Coverage
from modelfleet.core.cohorts import CohortPlan
from modelfleet.core.counts import ReleaseTally, Share, TargetCounts
from modelfleet.core.gates import DEFAULT_TUNING, Measurement, Tuning
from modelfleet.core.gateway import Gateway, compact
from modelfleet.core.phases import TARGET_PHASES
from modelfleet.core.types import CohortStatus, Release
from modelfleet.core.versions import VersionSnapshot
from modelfleet.core.windows import Count, Window


def _key(plans: Iterable[CohortPlan]) -> tuple[Hashable, ...]:
    """What decides membership in a group: the releases and their selectors and steps."""
    return tuple(
        (p.release.name, p.salt, p.selector, tuple((s.percent, s.selector) for s in p.steps))
        for p in plans
    )


class ModelGroup:
    """The releases of one model in one namespace, and which gateways each covers alone."""

    __slots__ = ("conflicts", "key", "releases", "tuning")

    def __init__(self, plans: Sequence[CohortPlan], tuning: Tuning) -> None:
        self.key = _key(plans)
        self.tuning = tuning
        self.releases = {p.release.name: ReleaseTally(p, tuning) for p in plans}
        self.conflicts: dict[tuple[str, ...], int] = {}

    def member(self, gateway: Gateway) -> tuple[ReleaseTally, int] | tuple[str, ...] | None:
        """The one release covering ``gateway`` and its first step, or the names of the
        releases covering it together (a conflict), or None."""
        covering = [t for t in self.releases.values() if t.plan.selects(gateway)]
        if len(covering) > 1:
            return tuple(sorted(t.name for t in covering))
        if not covering:
            return None
        first = covering[0].plan.first_step(gateway)
        return None if first is None else (covering[0], first)

    def update(self, old: Gateway | None, new: Gateway | None) -> None:
        if old is not None:
            self._apply(old, -1)
        if new is not None:
            self._apply(new, 1)

    def _apply(self, gateway: Gateway, sign: int) -> None:
        where = self.member(gateway)
        if where is None:
            return
        if isinstance(where[0], ReleaseTally):
            tally, first = where
            assert isinstance(tally, ReleaseTally) and isinstance(first, int)
            tally.apply(gateway, first, sign)
            return
        names = tuple(str(n) for n in where)
        left = self.conflicts.get(names, 0) + sign
        if left:
            self.conflicts[names] = left
        else:
            self.conflicts.pop(names, None)

    def count_target(
        self,
        tally: ReleaseTally,
        target: VersionSnapshot,
        through: int,
        gateways: Mapping[str, Gateway],
    ) -> None:
        """(Re)count ``tally`` for ``target`` over its members (``gateways``: by name)."""
        counts = TargetCounts(target, len(tally.assigned), self.tuning, through)
        for name, first in tally.members.items():
            counts.apply(Share(gateways[name], tally.model, target), first, 1)
        tally.target = counts


class FleetTally:
    """The gateways of one namespace and the counts fed by their events (module docstring)."""

    def __init__(self, namespace: str, *, silent_after: float = 300.0) -> None:
        self.namespace = namespace
        self._gateways: dict[str, Gateway] = {}
        self._groups: dict[str, ModelGroup] = {}
        self._states: dict[tuple[str, str, str], int] = {}
        self._silent_after = silent_after
        self._seen = Window(silent_after, Count())

    def __len__(self) -> int:
        return len(self._gateways)

    def gateways(self) -> Iterable[Gateway]:
        """The gateways, in no particular order (a live view: do not hold it across events)."""
        return self._gateways.values()

    def get(self, name: str) -> Gateway | None:
        return self._gateways.get(name)

    def put(self, gateway: Gateway) -> None:
        """An EdgeGateway added or modified (kept compacted: :func:`~modelfleet.core.gateway.
        compact`)."""
        gateway = compact(gateway)
        old = self._gateways.get(gateway.name)
        self._gateways[gateway.name] = gateway
        self._account(old, -1)
        self._account(gateway, 1)
        for group in self._groups.values():
            group.update(old, gateway)

    def drop(self, name: str) -> Gateway | None:
        """An EdgeGateway deleted; the gateway it was, if known."""
        old = self._gateways.pop(name, None)
        if old is not None:
            self._account(old, -1)
            for group in self._groups.values():
                group.update(old, None)
        return old

    def _account(self, gateway: Gateway | None, sign: int) -> None:
        if gateway is None:
            return
        for model, state in gateway.models.items():
            key = (model, state.version or "", state.state.value)
            left = self._states.get(key, 0) + sign
            if left:
                self._states[key] = left
            else:
                del self._states[key]
        if gateway.last_seen is not None:
            at = gateway.last_seen.timestamp()
            (self._seen.add if sign > 0 else self._seen.remove)(at)

    def states(self) -> dict[tuple[str, str, str], int]:
        """Gateways per (model, version or "", reported state)."""
        return dict(self._states)

    def runs(self, model: str, version: str) -> bool:
        """Whether some gateway reports ``version`` of ``model`` (in whatever state)."""
        return any(m == model and v == version for m, v, _ in self._states)

    def silent(self, now: float) -> int:
        """Gateways not seen within ``silent_after`` seconds of ``now`` (or never)."""
        if not self._seen.advance(now):
            self._seen = Window(self._silent_after, Count())
            for gateway in self._gateways.values():
                if gateway.last_seen is not None:
                    self._seen.add(gateway.last_seen.timestamp())
            self._seen.advance(now)
        return len(self._gateways) - self._seen.agg.n

    def measure(
        self,
        release: Release,
        others: Iterable[Release],
        now: datetime,
        tuning: Tuning = DEFAULT_TUNING,
    ) -> Measurement:
        """What :func:`~modelfleet.core.gates.measure` returns for the same arguments (the
        gateways being this tally's), from the counts."""
        status = release.status
        target = status.target
        through = status.rollout.step if status.phase in TARGET_PHASES and target else -1
        group = self._group(release, others, tuning, through)
        at = now.timestamp()
        tally = group.releases[release.name]
        if target is not None:
            counts = tally.target
            stale = counts is None or counts.key != (target.digest, target.version)
            if stale or counts is None or counts.through != through:
                group.count_target(tally, target, through, self._gateways)
        windows = [tally.seen, *(tally.target.windows() if tally.target else ())]
        advanced = [w.advance(at) for w in windows]  # every one of them
        if not all(advanced):  # now went back: count again
            self._rebuild(release, others, tuning, through)
            return self.measure(release, others, now, tuning)
        return _measurement(release, tally, group, through, target is not None)

    def _group(
        self, release: Release, others: Iterable[Release], tuning: Tuning, through: int
    ) -> ModelGroup:
        model = release.spec.model
        scope = [r for r in others if r.namespace == self.namespace and r.name != release.name]
        for gone in set(self._groups) - {r.spec.model for r in scope} - {model}:
            del self._groups[gone]  # no release of that model any more
        plans = sorted(
            (CohortPlan.of(r) for r in (release, *scope) if r.spec.model == model),
            key=lambda p: p.release.name,
        )
        group = self._groups.get(model)
        if group is None or group.key != _key(plans) or group.tuning != tuning:
            group = self._rebuild(release, others, tuning, through, plans)
        else:
            for plan in plans:
                group.releases[plan.release.name].plan = plan
        return group

    def _rebuild(
        self,
        release: Release,
        others: Iterable[Release],
        tuning: Tuning,
        through: int,
        plans: Sequence[CohortPlan] | None = None,
    ) -> ModelGroup:
        """A new group for ``release``'s model, counted in one walk (with its target, if any)."""
        if plans is None:
            model = release.spec.model
            plans = sorted(
                (
                    CohortPlan.of(r)
                    for r in (release, *others)
                    if r.namespace == self.namespace and r.spec.model == model
                    and (r is release or r.name != release.name)
                ),
                key=lambda p: p.release.name,
            )  # fmt: skip
        group = ModelGroup(plans, tuning)
        tally = group.releases[release.name]
        if release.status.target is not None:
            tally.target = TargetCounts(release.status.target, len(tally.assigned), tuning, through)
        for gateway in self._gateways.values():
            group.update(None, gateway)
        self._groups[release.spec.model] = group
        return group


def _measurement(
    release: Release, tally: ReleaseTally, group: ModelGroup, through: int, has_target: bool
) -> Measurement:
    counts = tally.target if has_target else None
    steps = release.spec.steps
    cohorts = tuple(
        CohortStatus(
            step.name,
            tally.assigned[i],
            counts.active[i] if counts else 0,
            counts.failed[i] if counts else 0,
            counts.reporting[i].agg.n if counts else 0,
        )
        for i, step in enumerate(steps)
    )
    name = release.name
    conflicted = sum(n for names, n in group.conflicts.items() if name in names)
    others = {o for names in group.conflicts if name in names for o in names if o != name}
    coverage = Coverage(tally.assigned[0] if steps else 0, tally.seen.agg.n)
    if counts is None or through < 0:
        return Measurement(
            cohorts=cohorts,
            conflicted=conflicted,
            conflicts_with=tuple(sorted(others)),
            first_cohort=coverage,
        )
    told = slice(0, through + 1)
    health = counts.health.agg
    return Measurement(
        cohorts=cohorts,
        assigned=sum(tally.assigned[told]),
        active=sum(counts.active[told]),
        failed=sum(counts.failed[told]),
        reporting=health.n,
        waiting=counts.waiting.agg.n,
        requests=health.requests,
        errors=health.errors,
        latency_p95=health.p95.percentile(),
        drift_max=health.drift.maximum(),
        conflicted=conflicted,
        conflicts_with=tuple(sorted(others)),
        first_cohort=coverage,
    )
