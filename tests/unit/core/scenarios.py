"""Named ways to bring a Sim into each phase, shared by the decide() tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from modelfleet.api import status_to_dict
from modelfleet.core import (
    Gates,
    HistoryEntry,
    Phase,
    ReleaseStatus,
    RolloutStatus,
)
from modelfleet.core.checklist import ChecklistItem

from .factories import T0, digest, refused, release, snap, verified
from .sim import Sim

GATES = Gates(
    max_failed_gateways=0,
    max_error_rate=0.05,
    max_latency_p95_ms=200,
    max_drift_score=0.3,
    min_reporting_ratio=0.9,
    min_requests=100,
    progress_deadline=timedelta(minutes=15),
)


def settled(stable: str = "1.0.0", **spec_kw: object) -> Sim:
    """A release whose spec and stable are ``stable`` (Succeeded), fleet running it."""
    st = ReleaseStatus(
        phase=Phase.SUCCEEDED,
        observed_generation=1,
        reason="RolloutComplete",
        stable=snap(stable, since=T0 - timedelta(days=1)),
        rollout=RolloutStatus(step=2, step_name="fleet"),
        history=(
            HistoryEntry(
                stable,
                digest(stable),
                "Succeeded",
                started_at=T0 - timedelta(days=2),
                finished_at=T0 - timedelta(days=1),
            ),
        ),
    )
    r = release(stable, status=st, gates=GATES, **spec_kw)  # type: ignore[arg-type]
    sim = Sim(release=r)
    sim.persisted = status_to_dict(st)
    sim.tick()
    return sim


def pending(version: str = "2.0.0") -> Sim:
    return Sim(release=release(version, gates=GATES))


def verifying(version: str = "2.0.0") -> Sim:
    sim = settled()
    sim.edit(version=version)
    sim.tick()
    assert sim.phase == "Verifying"
    return sim


def progressing(version: str = "2.0.0") -> Sim:
    sim = verifying(version)
    sim.tick(verification=verified(version, at=sim.now))
    assert sim.phase == "Progressing", sim.release.status
    return sim


def blocked(version: str = "2.0.0") -> Sim:
    """Verified, but the cluster's release checklist requires an owner the spec lacks."""
    sim = verifying(version)
    sim.required = frozenset({ChecklistItem.OWNER})
    sim.tick(verification=verified(version, at=sim.now))
    assert sim.phase == "Blocked", sim.release.status
    return sim


def paused_by_spec() -> Sim:
    sim = progressing()
    sim.edit(paused=True)
    sim.tick()
    assert (sim.phase, sim.release.status.reason) == ("Paused", "PausedBySpec")
    return sim


def paused_inconclusive() -> Sim:
    sim = progressing()
    sim.silent = set(sim.names)
    sim.tick(timedelta(seconds=30))
    assert (sim.phase, sim.release.status.reason) == ("Progressing", "WaitingForReports")
    sim.tick(timedelta(minutes=2))  # no report within the grace: evidence is missing
    assert (sim.phase, sim.release.status.reason) == ("Paused", "Inconclusive")
    return sim


def rejected() -> Sim:
    sim = verifying()
    sim.tick(verification=refused("2.0.0", at=sim.now))
    assert sim.phase == "Rejected"
    return sim


def aborted() -> Sim:
    sim = progressing()
    sim.act("abort", "abort-1")
    sim.tick(timedelta(seconds=10))
    assert sim.phase == "Aborted"
    return sim


def at_last_step() -> Sim:
    """Progressing at the last step, converged and healthy."""
    sim = progressing()
    sim.release = replace(
        sim.release,
        status=replace(
            sim.release.status,
            rollout=replace(sim.release.status.rollout, step=2, step_name="fleet"),
        ),
    )
    sim.persisted = status_to_dict(sim.release.status)
    return sim
