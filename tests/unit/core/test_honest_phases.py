"""Phases that mean what they say: no Paused flip while a fresh cohort's first health window is
due, Inconclusive only past the grace, the verification of the version in force after a revert,
and actions that are either run or ignored with a reason."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from modelfleet.api import status_patch
from modelfleet.core import Action, ActionKind, Phase
from modelfleet.core.conditions import RECONCILING, STALLED
from modelfleet.core.decide import FleetView, decide
from modelfleet.core.gates import Tuning

from . import scenarios as sc
from .factories import refused, verified
from .sim import Sim

TICK = timedelta(seconds=20)
GRACE = Tuning().first_report_grace


def test_grace_is_two_report_intervals() -> None:
    assert Tuning(report_interval=timedelta(seconds=15)).first_report_grace == timedelta(seconds=30)


def test_healthy_rollout_with_late_first_reports_only_progresses() -> None:
    sim = sc.verifying()
    sim.first_report_after = timedelta(seconds=70)  # every cohort: one window before reporting
    d = sim.tick(verification=verified("2.0.0", at=sim.now))
    assert sim.phase == "Progressing"
    events = [(e.type, e.reason) for e in d.events]
    reasons_seen = set()
    phases = [sim.phase]
    for _ in range(500):
        d = sim.tick(TICK)
        events += [(e.type, e.reason) for e in d.events]
        reasons_seen.add(sim.release.status.reason)
        if sim.phase != phases[-1]:
            phases.append(sim.phase)
        if sim.phase == "Succeeded":
            break
    assert phases == ["Progressing", "Succeeded"], "no Paused flip on the way"
    assert "WaitingForReports" in reasons_seen
    assert events == [
        ("Normal", "Verified"),
        ("Normal", "BakeCompleted"),  # canary -> early
        ("Normal", "BakeCompleted"),  # early -> fleet
        ("Normal", "BakeCompleted"),  # fleet: 2.0.0 is stable
    ]


def test_waiting_for_reports_is_in_progress_for_kstatus() -> None:
    sim = sc.progressing()
    sim.silent = set(sim.names)
    d = sim.tick(timedelta(seconds=30))
    st = sim.release.status
    assert (st.phase, st.reason) == (Phase.PROGRESSING, "WaitingForReports")
    assert st.message is not None and "2m" in st.message
    assert d.events == ()
    reconciling = st.condition(RECONCILING)
    assert reconciling is not None and (reconciling.status, reconciling.reason) == (
        "True",
        "WaitingForReports",
    )
    assert d.requeue_after is not None and d.requeue_after <= GRACE


def test_evidence_missing_past_the_grace_holds_with_a_reason_distinct_from_spec_paused() -> None:
    sim = sc.paused_inconclusive()
    held = sim.release.status
    paused = sc.paused_by_spec().release.status
    assert held.phase == paused.phase == Phase.PAUSED
    assert (held.reason, paused.reason) == ("Inconclusive", "PausedBySpec")
    for st in (held, paused):
        c = st.condition(RECONCILING)
        assert c is not None and (c.status, c.reason) == ("True", st.reason)


def test_grace_does_not_count_against_the_progress_deadline() -> None:
    sim = sc.progressing()
    sim.silent = set(sim.names)
    sim.tick(timedelta(seconds=30))
    assert sim.release.status.rollout.inconclusive_since is None
    sim.tick(GRACE)
    assert sim.release.status.rollout.inconclusive_since == sim.now


def test_reports_arriving_within_the_grace_end_the_wait_without_an_event() -> None:
    sim = sc.progressing()
    sim.silent = set(sim.names)
    sim.tick(timedelta(seconds=30))
    sim.silent = set()
    d = sim.tick(timedelta(seconds=30))
    st = sim.release.status
    assert (st.phase, st.reason) == (Phase.PROGRESSING, "ReportsReceived")
    assert d.events == ()


def test_revert_after_a_rejection_shows_the_verification_of_stable() -> None:
    sim = sc.rejected()
    assert sim.release.status.verification is not None
    assert not sim.release.status.verification.verified
    sim.edit(version="1.0.0")
    sim.tick()
    st = sim.release.status
    assert (st.phase, st.reason) == (Phase.SUCCEEDED, "Reverted")
    assert st.stable is not None
    assert st.verification == st.stable.verification


def test_revert_after_a_verified_rollback_shows_the_stable_verification() -> None:
    sim = sc.settled()
    sim.edit(version="2.0.0")
    sim.tick()
    sim.tick(verification=verified("2.0.0", at=sim.now))
    sim.tick(timedelta(seconds=5))
    assert sim.release.status.verification is not None
    assert sim.release.status.verification.digest != sim.release.status.stable.digest  # type: ignore[union-attr]
    sim.edit(version="1.0.0")
    sim.tick()
    st = sim.release.status
    assert st.phase is Phase.SUCCEEDED and st.stable is not None
    assert st.verification == st.stable.verification


def test_rejected_then_reverted_is_current_for_kstatus() -> None:
    sim = sc.verifying()
    sim.tick(verification=refused("2.0.0", at=sim.now))
    st = sim.release.status
    stalled = st.condition(STALLED)
    assert stalled is not None and (stalled.status, stalled.reason) == (
        "True",
        "VerificationFailed",
    )
    sim.edit(version="1.0.0")
    sim.tick()
    st = sim.release.status
    assert {c.type: c.status for c in st.conditions if c.type in (RECONCILING, STALLED)} == {
        RECONCILING: "False",
        STALLED: "False",
    }


# --------------------------------------------------------------------------- actions


def _annotate(sim: Sim, name: str | None, action_id: str | None = None) -> None:
    """What ``kubectl annotate`` does (``None``: the annotation removed)."""
    if name is None:
        sim.release = replace(sim.release, action=None)
        return
    try:
        kind: ActionKind | None = ActionKind(name)
    except ValueError:
        kind = None
    sim.release = replace(sim.release, action=Action(kind, action_id or f"auto:{name}", name))


def test_action_without_an_id_runs_once_while_annotated_and_again_after_re_annotating() -> None:
    sim = sc.progressing()
    sim.edit(steps=tuple(replace(s, bake=timedelta(hours=1)) for s in sim.release.spec.steps))
    sim.tick()
    _annotate(sim, "promote")
    sim.tick()
    assert sim.step == 1
    sim.tick(TICK)
    assert sim.step == 1, "still annotated: not run again"
    _annotate(sim, None)
    sim.tick()
    assert sim.release.status.rollout.last_action_id is None
    _annotate(sim, "promote")
    sim.tick()
    assert sim.step == 2


def test_unknown_action_is_ignored_once_with_a_warning_naming_the_known_ones() -> None:
    sim = sc.progressing()
    _annotate(sim, "nuke", "n-1")
    d = sim.tick()
    assert [(e.type, e.reason) for e in d.events] == [("Warning", "ActionIgnored")]
    assert "'nuke'" in d.events[0].message and "promote, abort or retry" in d.events[0].message
    assert sim.phase == "Progressing"
    assert sim.tick(TICK).events == ()


def test_action_in_the_wrong_phase_says_when_it_applies() -> None:
    sim = sc.settled()
    _annotate(sim, "retry", "r-1")
    d = sim.tick()
    (event,) = d.events
    assert event.reason == "ActionIgnored"
    assert "Succeeded" in event.message and "retry applies after Rejected or Aborted" in (
        event.message
    )


def test_decide_is_pure_for_generated_ids() -> None:
    sim = sc.progressing()
    _annotate(sim, "abort")
    fleet = FleetView(sim.gateways(), [sim.release])
    a = decide(sim.release, fleet, sim.now)
    b = decide(sim.release, fleet, sim.now)
    assert a == b
    assert a.status.phase is Phase.ABORTED
    assert a.status.rollout.last_action_id == "auto:abort"


def test_a_defaulted_never_written_status_is_written_whole() -> None:
    r = sc.pending().release
    never = replace(r, status=replace(r.status, observed_generation=0))
    d = decide(never, FleetView(), sc.T0)
    assert d.status.phase is Phase.VERIFYING
    assert {"observedGeneration", "phase", "conditions", "rollout"} <= set(status_patch(d))
