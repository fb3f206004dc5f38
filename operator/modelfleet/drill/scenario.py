"""What a drill scenario is: the :class:`Scenario` hooks the runner calls, the versions every
lane uses, and the checks several scenarios share. The eight scenarios are in
:mod:`modelfleet.drill.scenarios`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from modelfleet.demo.watch import FleetView
from modelfleet.drill.report import Check

if TYPE_CHECKING:
    from modelfleet.drill.fleet import DrillFleet
    from modelfleet.drill.runner import Run

V1, V2, V3 = "1.0.0", "2.0.0", "3.0.0"
REGRESSION = {V2: {"errorRate": 0.3}}
ROLLING = ("Progressing", "Paused")  # a rollout under way (Paused: held, e.g. Inconclusive)


def on_spec(view: FleetView, version: str, phase: str) -> bool:
    r = view.release
    return r.spec_version == version and r.observed and r.phase == phase


def back_on(view: FleetView, version: str) -> Check:
    return Check(f"every gateway runs {version}", view.all_on(version), view.versions_line())


def within_canaries(run: Run) -> Check:
    exposed, ring = run.timeline.exposed, set(run.lane.canaries)
    return Check(
        "exposure stayed within the canary ring",
        exposed <= ring,
        f"{len(exposed)} exposed ({', '.join(sorted(exposed)) or 'none'}); "
        f"ring {', '.join(sorted(ring))}",
    )


def outcome_check(name: str, ok: bool, view: FleetView) -> Check:
    r = view.release
    return Check(name, ok, f"{r.phase} ({r.reason}): {r.message or ''}".strip())


class Scenario:
    """Base: subclasses set the class attributes and override the hooks."""

    name: ClassVar[str]
    prefix: ClassVar[str]  # gateway name prefix
    summary: ClassVar[str]  # one line for --help
    bad_version: ClassVar[str | None] = V2
    behaviour: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    groups: ClassVar[tuple[int, ...]] = ()  # gateways per simulator process (default: one)
    progress_deadline: ClassVar[str | None] = None  # the lane's, if not the drill's default

    def refusal(self, fleet: DrillFleet) -> str | None:
        """Why this scenario cannot run on ``fleet`` (one line), or None; asked after setup."""
        return None

    def inject(self, run: Run) -> None:
        """Start the fault (and mark it, here or in :meth:`tick`)."""
        raise NotImplementedError

    def tick(self, run: Run, view: FleetView) -> None:
        """Called on every look at the fleet: act, or remember what was seen."""

    def detected(self, run: Run, view: FleetView) -> str | None:
        """A label once the system has acted on the fault."""
        raise NotImplementedError

    def recovered(self, run: Run, view: FleetView) -> str | None:
        """A label once the fleet is settled and safe."""
        raise NotImplementedError

    def checks(self, run: Run, view: FleetView) -> list[Check]:
        raise NotImplementedError
