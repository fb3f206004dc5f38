"""``desired_state``: what each gateway should run, per model. Shared by operator and fleet API.

For each release (same namespace, same model) whose selector covers the gateway:

* the ``target`` when the phase is Progressing, Paused or Succeeded, ``status.target`` is set and
  the gateway is in the cumulative cohort of ``status.rollout.step``;
* otherwise the ``stable`` (Pending, Verifying, Rejected and Aborted always land here);
* otherwise nothing (``snapshot is None``): there is no stable yet, e.g. a first release.

**Revoked stable.** A ``stable`` marked ``revoked`` (the release's TrustPolicy denies it now;
``decide`` keeps the flag) is told to no gateway: each gets no instruction for the model, so a
gateway that runs it keeps it and no other installs it. (Deciding from the assignment alone, not
from what each gateway reports, keeps the fleet API's answers a function of the releases, and
the same as what the operator counts.)

**Conflicts.** When two or more releases of the same model cover one gateway, no release may
change what that gateway is told. The gateway is then told the ``stable`` the releases agree on
(same version and digest in every conflicting release's status), else nothing; in both cases the
assignment carries the names of the conflicting releases, and ``decide`` sets condition
``Conflict`` on each of them until the selectors are fixed.

``snapshot is None`` means *no instruction*: the agent activates nothing new and keeps what it
runs. Only versions present in a release status (hence verified by the operator) are ever told.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from modelfleet.core.cohorts import CohortPlan
from modelfleet.core.gateway import Gateway
from modelfleet.core.phases import ROLLING_PHASES, TARGET_PHASES
from modelfleet.core.types import Release
from modelfleet.core.versions import VersionSnapshot


class Role(StrEnum):
    """Which of a release's versions a gateway is told."""

    TARGET = "target"
    """The version being rolled out (the gateway is in a cohort already reached)."""
    STABLE = "stable"
    """The last version that completed a rollout (or the one the conflicting releases share)."""
    NONE = "none"
    """No instruction: no stable exists yet, or a conflict with no agreed stable."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """What one gateway should run for one model, and why."""

    model: str
    snapshot: VersionSnapshot | None
    role: Role
    release: str
    """The deciding release's name (for a conflict: the names, sorted, joined by ``,``)."""
    step: int | None = None
    """The release's current step index while it rolls out (Progressing/Paused), else ``None``."""
    conflict: tuple[str, ...] = ()
    """Names of all releases covering this gateway for this model, when more than one."""
    first_step: int | None = None
    """The step at which the gateway joins the deciding release (``None`` for conflicts)."""


class Assigner:
    """Precomputed release plans; answers ``desired_state`` for many gateways cheaply.

    Build one per set of releases (e.g. per fleet-API cache refresh, or per ``decide`` call) and
    ask it about each gateway: the cost per gateway is one hash plus the selector checks.
    """

    __slots__ = ("_by_scope",)

    def __init__(self, releases: Iterable[Release]) -> None:
        by_scope: dict[str, dict[str, list[CohortPlan]]] = defaultdict(lambda: defaultdict(list))
        for release in sorted(releases, key=lambda r: (r.namespace, r.name)):
            by_scope[release.namespace][release.spec.model].append(CohortPlan.of(release))
        self._by_scope = {ns: dict(models) for ns, models in by_scope.items()}

    def models(self, namespace: str) -> tuple[str, ...]:
        """Models with at least one release in ``namespace``."""
        return tuple(sorted(self._by_scope.get(namespace, {})))

    def assignment(self, gateway: Gateway, model: str) -> Assignment | None:
        """The assignment of ``gateway`` for ``model``; ``None`` when no release covers it."""
        plans = self._by_scope.get(gateway.namespace, {}).get(model, ())
        covering = [plan for plan in plans if plan.selects(gateway)]
        if not covering:
            return None
        if len(covering) == 1:
            return _assign(covering[0], gateway)
        return _conflict(model, covering)

    def desired_state(self, gateway: Gateway) -> dict[str, Assignment]:
        """Every model some release covers ``gateway`` for, with its assignment."""
        out: dict[str, Assignment] = {}
        for model in self.models(gateway.namespace):
            found = self.assignment(gateway, model)
            if found is not None:
                out[model] = found
        return out


def desired_state(gateway: Gateway, releases: Iterable[Release]) -> dict[str, Assignment]:
    """What ``gateway`` should run: ``{model: Assignment}`` for every release covering it.

    ``assignment.snapshot`` is the version to run, ``None`` for no instruction. Pass all
    releases of the gateway's namespace (others are ignored).
    """
    return Assigner(releases).desired_state(gateway)


def _assign(plan: CohortPlan, gateway: Gateway) -> Assignment:
    release = plan.release
    status = release.status
    step = status.rollout.step if status.phase in ROLLING_PHASES else None
    first = plan.first_step(gateway)
    model = release.spec.model
    if (
        status.phase in TARGET_PHASES
        and status.target is not None
        and first is not None
        and first <= status.rollout.step
    ):
        return Assignment(model, status.target, Role.TARGET, release.name, step, (), first)
    stable = _stable_for(status.stable)
    if stable is not None:
        return Assignment(model, stable, Role.STABLE, release.name, step, (), first)
    return Assignment(model, None, Role.NONE, release.name, step, (), first)


def _stable_for(stable: VersionSnapshot | None) -> VersionSnapshot | None:
    """``stable``, unless it is revoked: then no instruction (module docstring)."""
    return None if stable is None or stable.revoked else stable


def _conflict(model: str, covering: list[CohortPlan]) -> Assignment:
    names = tuple(sorted(plan.release.name for plan in covering))
    stables = [_stable_for(plan.release.status.stable) for plan in covering]
    first = stables[0]
    agreed = first is not None and all(first.same_version(other) for other in stables[1:])
    return Assignment(
        model=model,
        snapshot=first if agreed else None,
        role=Role.STABLE if agreed else Role.NONE,
        release=",".join(names),
        conflict=names,
    )
