"""decide(): the rollout rules, one behaviour per test (see docs/rollout.md)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from modelfleet.api import status_from_dict, status_patch
from modelfleet.core import Gates, LabelSelector, RollbackMode, Step
from modelfleet.core.decide import FleetView, decide

from . import scenarios as sc
from .factories import T0, digest, refused, release, verified
from .sim import Sim

MIN = timedelta(minutes=1)


def converge(sim: Sim) -> None:
    """Ticks until gates pass (gateways act at once), without spending the bake."""
    sim.tick(timedelta(seconds=5))


def test_new_release_verifies_before_any_gateway_hears_of_it() -> None:
    sim = sc.verifying()
    d = sim.tick(10 * MIN)
    assert d.needs_verification
    assert sim.phase == "Verifying"
    assert set(sim.told().values()) == {"1.0.0"}


def test_promote_action_cannot_skip_verification() -> None:
    sim = sc.verifying()
    sim.act("promote", "p-1")
    d = sim.tick()
    assert sim.phase == "Verifying"
    assert [e.reason for e in d.events] == ["ActionIgnored"]
    assert set(sim.told().values()) == {"1.0.0"}


def test_stale_verification_for_another_digest_is_ignored() -> None:
    sim = sc.verifying("2.0.0")
    sim.tick(verification=verified("9.9.9"))
    assert sim.phase == "Verifying"


def test_verified_release_starts_at_step_zero_with_target_set() -> None:
    sim = sc.progressing()
    st = sim.release.status
    assert st.target is not None and st.target.version == "2.0.0"
    assert st.target.verification is not None and st.target.verification.verified
    assert (st.rollout.step, st.rollout.step_name, st.rollout.step_started_at) == (0, "canary", T0)
    told = sim.told()
    canaries = [n for n, v in told.items() if v == "2.0.0"]
    assert 0 < len(canaries) < 30
    assert st.condition("Verified") is not None
    assert st.condition("Verified").status == "True"  # type: ignore[union-attr]


def test_rejected_keeps_stable_everywhere_and_records_why() -> None:
    sim = sc.rejected()
    st = sim.release.status
    assert set(sim.told().values()) == {"1.0.0"}
    assert st.stable is not None and st.stable.version == "1.0.0"
    assert st.target is None
    assert st.verification is not None and not st.verification.verified
    assert st.history[-1].outcome == "Rejected"
    assert {c.type: c.status for c in st.conditions}["Degraded"] == "True"
    sim.tick(MIN)
    assert sim.phase == "Rejected", "an unchanged spec is not verified again"
    sim.act("retry", "r-1")
    assert sim.tick().needs_verification


def test_full_rollout_promotes_step_by_step_after_each_bake() -> None:
    sim = sc.progressing()
    converge(sim)
    assert sim.release.status.rollout.healthy_since == sim.now
    sim.tick(9 * MIN)
    assert sim.step == 0, "bake of 10m not over"
    d = sim.tick(MIN)
    assert sim.step == 1
    assert [e.reason for e in d.events] == ["BakeCompleted"]
    converge(sim)
    sim.tick(30 * MIN)
    assert sim.step == 2
    converge(sim)
    assert sim.phase == "Succeeded"
    st = sim.release.status
    assert st.stable is not None and st.stable.version == "2.0.0"
    assert st.target is None
    assert st.history[-1].outcome == "Succeeded"
    assert set(sim.told().values()) == {"2.0.0"}
    assert {c.type: c.status for c in st.conditions}["Ready"] == "True"


def test_bake_is_not_shortened_by_a_restart() -> None:
    sim = sc.progressing()
    converge(sim)
    healthy = sim.release.status.rollout.healthy_since
    # A "new operator process": only the persisted status survives.
    sim.release = replace(sim.release, status=status_from_dict(sim.persisted))
    d = sim.tick(10 * MIN - timedelta(milliseconds=1))
    assert sim.step == 0
    assert sim.release.status.rollout.healthy_since == healthy
    assert d.requeue_after == timedelta(milliseconds=1)
    sim.tick(timedelta(milliseconds=1))
    assert sim.step == 1


def test_rerunning_decide_on_persisted_status_decides_the_same() -> None:
    sim = sc.progressing()
    converge(sim)
    fleet = FleetView(sim.gateways(), [sim.release])
    later = sim.now + 3 * MIN
    first = decide(sim.release, fleet, later)
    again = decide(replace(sim.release, status=status_from_dict(sim.persisted)), fleet, later)
    assert first.status == again.status and status_patch(first) == status_patch(again)


def test_nothing_changed_means_an_empty_patch() -> None:
    sim = sc.progressing()
    converge(sim)
    assert status_patch(sim.tick(MIN)) == {}


def test_a_failed_gate_evaluation_restarts_the_bake() -> None:
    sim = sc.progressing()
    converge(sim)
    sim.silent = set(sim.names)
    sim.tick(8 * MIN)
    assert sim.phase == "Paused"
    sim.silent = set()
    sim.tick(MIN)
    assert sim.phase == "Progressing"
    sim.tick(5 * MIN)
    assert sim.step == 0, "bake counts from when gates held again"
    sim.tick(5 * MIN)
    assert sim.step == 1


def test_never_promotes_on_silence() -> None:
    sim = sc.progressing()
    sim.edit(gates=replace(sc.GATES, progress_deadline=None))
    sim.silent = set(sim.names)
    sim.tick(MIN)  # converged: its first health window is not due yet
    assert (sim.phase, sim.release.status.reason) == ("Progressing", "WaitingForReports")
    for _ in range(10):
        sim.tick(60 * MIN)
        assert sim.step == 0
        assert (sim.phase, sim.release.status.reason) == ("Paused", "Inconclusive")
    gates = sim.release.status.rollout.gates
    assert gates is not None and gates.reason == "NoGatewayReporting"


def test_too_few_requests_is_inconclusive() -> None:
    sim = sc.progressing()
    sim.requests = 1
    sim.tick(MIN)
    assert (sim.phase, sim.release.status.reason) == ("Progressing", "WaitingForReports")
    sim.tick(2 * MIN)  # the first-report grace (two report intervals) is over
    assert (sim.phase, sim.release.status.reason) == ("Paused", "Inconclusive")
    assert sim.release.status.rollout.gates.reason == "TooFewRequests"  # type: ignore[union-attr]


def test_inconclusive_longer_than_the_deadline_aborts() -> None:
    sim = sc.paused_inconclusive()
    sim.tick(15 * MIN)
    assert sim.phase == "Paused"
    d = sim.tick(MIN)
    assert sim.phase == "Aborted"
    assert d.status.reason == "ProgressDeadlineExceeded"


def test_not_converging_within_the_deadline_aborts() -> None:
    sim = sc.progressing()
    sim.lagging = True  # gateways never pick up what they are told
    sim.tick(14 * MIN)
    assert sim.phase == "Progressing"
    assert sim.release.status.rollout.gates.result.value == "Wait"  # type: ignore[union-attr]
    sim.tick(2 * MIN)
    assert (sim.phase, sim.release.status.reason) == ("Aborted", "ProgressDeadlineExceeded")


def test_bake_longer_than_the_deadline_is_fine() -> None:
    sim = sc.progressing()
    converge(sim)
    sim.tick(10 * MIN)
    assert sim.step == 1
    converge(sim)
    sim.tick(20 * MIN)
    assert sim.phase == "Progressing" and sim.step == 1
    sim.tick(10 * MIN)
    assert sim.step == 2


@pytest.mark.parametrize(
    ("attr", "value", "reason"),
    [
        ("errors", 100, "ErrorRateExceeded"),
        ("p95", 500.0, "LatencyP95Exceeded"),
        ("drift", 0.9, "DriftScoreExceeded"),
    ],
)
def test_health_threshold_exceeded_aborts_and_everyone_goes_back_to_stable(
    attr: str, value: float, reason: str
) -> None:
    sim = sc.progressing()
    converge(sim)
    setattr(sim, attr, value)
    d = sim.tick(MIN)
    assert (sim.phase, d.status.reason) == ("Aborted", reason)
    assert set(sim.told().values()) == {"1.0.0"}
    assert sim.release.status.history[-1].outcome == "Aborted"
    assert [e.type for e in d.events] == ["Warning"]


def test_failed_gateways_over_the_budget_abort() -> None:
    sim = sc.progressing()
    canary = next(n for n, v in sim.told().items() if v == "2.0.0")
    sim.failing = {canary}
    d = sim.tick(MIN)
    assert (sim.phase, d.status.reason) == ("Aborted", "TooManyFailedGateways")


def test_failed_gateways_within_the_budget_do_not_block_convergence() -> None:
    sim = sc.progressing()
    sim.edit(gates=replace(sc.GATES, max_failed_gateways=1))
    canary = next(n for n, v in sim.told().items() if v == "2.0.0")
    sim.failing = {canary}
    sim.tick(MIN)
    assert sim.phase == "Progressing"
    assert sim.release.status.rollout.gates.result.value == "Pass"  # type: ignore[union-attr]
    assert sim.release.status.rollout.cohorts[0].failed == 1


def test_failures_of_other_versions_do_not_count() -> None:
    sim = sc.progressing()
    canary = next(n for n, v in sim.told().items() if v == "2.0.0")
    sim.running[canary] = ("0.9.0", "Failed")
    sim.lagging = True
    sim.tick(MIN)
    gates = sim.release.status.rollout.gates
    assert gates is not None and gates.failed_gateways == 0


def test_manual_abort_returns_every_gateway_to_stable() -> None:
    sim = sc.progressing()
    converge(sim)
    sim.tick(10 * MIN)
    assert sim.step == 1
    sim.act("abort", "a-1")
    d = sim.tick()
    assert (sim.phase, d.status.reason) == ("Aborted", "ManualAbort")
    assert set(sim.told().values()) == {"1.0.0"}
    sim.tick(60 * MIN)
    assert sim.phase == "Aborted", "stays aborted until the spec changes or a retry"


def test_actions_run_once_per_id() -> None:
    sim = sc.progressing()
    converge(sim)
    sim.act("promote", "p-1")
    sim.tick()
    assert sim.step == 1
    assert sim.release.status.rollout.last_action_id == "p-1"
    converge(sim)
    sim.tick()
    assert sim.step == 1, "the same action id does not promote twice"
    sim.act("promote", "p-2")
    sim.tick()
    assert sim.step == 2


def test_last_action_id_survives_a_new_rollout() -> None:
    sim = sc.aborted()
    sim.act("retry", "r-1")
    sim.tick()
    sim.tick(verification=verified(at=sim.now))
    assert sim.phase == "Progressing"
    assert sim.release.status.rollout.last_action_id == "r-1"
    sim.tick(MIN)
    assert sim.phase == "Progressing"


def test_action_in_a_phase_where_it_means_nothing_is_ignored_with_an_event() -> None:
    sim = sc.settled()
    sim.act("abort", "a-9")
    d = sim.tick()
    assert sim.phase == "Succeeded"
    assert [(e.reason, e.type) for e in d.events] == [("ActionIgnored", "Normal")]
    assert sim.release.status.rollout.last_action_id == "a-9"


def test_spec_paused_holds_the_step_but_gates_still_abort() -> None:
    sim = sc.paused_by_spec()
    sim.tick(2 * 60 * MIN)
    assert (sim.phase, sim.step) == ("Paused", 0)
    sim.errors = 900
    sim.tick(MIN)
    assert sim.phase == "Aborted"


def test_resume_after_a_long_pause_does_not_hit_the_deadline() -> None:
    sim = sc.progressing()
    sim.lagging = True
    sim.edit(paused=True)
    sim.tick(MIN)
    sim.tick(60 * MIN)
    assert sim.phase == "Paused"
    sim.edit(paused=False)
    sim.tick(MIN)
    assert sim.phase == "Progressing"
    assert sim.release.status.rollout.step_started_at == sim.now


def test_revert_to_stable_during_a_canary_ends_it_at_once() -> None:
    sim = sc.progressing()
    converge(sim)
    sim.edit(version="1.0.0")
    d = sim.tick()
    assert (sim.phase, d.status.reason) == ("Succeeded", "Reverted")
    assert d.status.target is None
    assert set(sim.told().values()) == {"1.0.0"}
    assert sim.release.status.history[-1].outcome == "Reverted"
    assert not d.needs_verification


def test_spec_change_mid_rollout_supersedes_it_from_stable() -> None:
    sim = sc.progressing()
    converge(sim)
    sim.tick(10 * MIN)
    sim.edit(version="3.0.0")
    d = sim.tick()
    assert sim.phase == "Verifying" and d.needs_verification
    assert sim.release.status.history[-1].outcome == "Superseded"
    assert sim.release.status.history[-1].version == "2.0.0"
    assert set(sim.told().values()) == {"1.0.0"}
    sim.tick(verification=verified("3.0.0", at=sim.now))
    assert (sim.phase, sim.step) == ("Progressing", 0)


def _rolled_to(version: str, then: str, *, rollback: RollbackMode) -> Sim:
    """Stable 1.0.0 -> 2.0.0 rolled out fully, then the spec names ``then``."""
    sim = sc.progressing(version)
    sim.edit(rollback=rollback)
    for _ in range(3):
        converge(sim)
        sim.tick(30 * MIN)
    assert sim.phase == "Succeeded"
    sim.edit(version=then)
    sim.tick()
    assert sim.phase == "Verifying"
    return sim


def test_rollback_to_a_formerly_stable_version_is_reverified_and_immediate() -> None:
    sim = _rolled_to("2.0.0", "1.0.0", rollback=RollbackMode.IMMEDIATE)
    d = sim.tick(verification=verified("1.0.0", at=sim.now))
    assert (d.status.phase, d.status.reason, sim.step) == ("Progressing", "ImmediateRollback", 2)
    assert set(sim.told().values()) == {"1.0.0"}
    converge(sim)
    assert sim.phase == "Succeeded"


def test_immediate_rollback_still_watches_gates() -> None:
    sim = _rolled_to("2.0.0", "1.0.0", rollback=RollbackMode.IMMEDIATE)
    sim.tick(verification=verified("1.0.0", at=sim.now))
    sim.errors = 900
    sim.tick(MIN)
    assert sim.phase == "Aborted"


def test_rollback_refused_by_todays_policy_is_rejected() -> None:
    sim = _rolled_to("2.0.0", "1.0.0", rollback=RollbackMode.IMMEDIATE)
    sim.tick(verification=refused("1.0.0", at=sim.now))
    assert sim.phase == "Rejected"
    assert set(sim.told().values()) == {"2.0.0"}


def test_progressive_rollback_goes_cohort_by_cohort() -> None:
    sim = _rolled_to("2.0.0", "1.0.0", rollback=RollbackMode.PROGRESSIVE)
    sim.tick(verification=verified("1.0.0", at=sim.now))
    assert (sim.phase, sim.step) == ("Progressing", 0)


def test_new_version_never_stable_before_starts_at_step_zero_even_if_immediate() -> None:
    sim = _rolled_to("2.0.0", "3.0.0", rollback=RollbackMode.IMMEDIATE)
    sim.tick(verification=verified("3.0.0", at=sim.now))
    assert sim.step == 0


def test_first_release_reaches_cohorts_only_then_everyone() -> None:
    sim = sc.pending()
    sim.tick()
    sim.tick(verification=verified(at=sim.now))
    told = sim.told()
    assert set(told.values()) == {"2.0.0", None}
    assert sum(v is None for v in told.values()) > 150
    for _ in range(3):
        converge(sim)
        sim.tick(30 * MIN)
    assert sim.phase == "Succeeded"
    assert set(sim.told().values()) == {"2.0.0"}


def test_aborted_first_release_tells_nobody_anything() -> None:
    sim = sc.pending()
    sim.tick()
    sim.tick(verification=verified(at=sim.now))
    sim.act("abort", "a")
    sim.tick()
    assert set(sim.told().values()) == {None}


def test_conflict_freezes_assignments_and_is_reported_on_both() -> None:
    sim = sc.progressing()
    other = release("1.0.0", name="detector-lab", status=sc.settled().release.status)
    other = replace(other, spec=replace(other.spec, selector=LabelSelector.of({"ring": "early"})))
    sim.others = [other]
    converge(sim)
    d = sim.tick(60 * MIN)
    assert sim.step == 0, "no promotion while in conflict"
    conds = {c.type: c for c in d.status.conditions}
    assert conds["Conflict"].status == "True"
    assert "detector-lab" in conds["Conflict"].message
    early = [g for g in sim.bare() if g.labels.get("ring") == "early"]
    assert all(sim.told()[g.name] == "1.0.0" for g in early)
    mine = replace(sim.release, status=sim.release.status)
    od = decide(other, FleetView(sim.gateways(), [mine, other]), sim.now)
    assert {c.type: c.status for c in od.status.conditions}["Conflict"] == "True"
    assert {c.type: c.status for c in od.status.conditions}["Ready"] == "False"
    sim.others = []
    sim.tick(MIN)
    assert {c.type: c.status for c in sim.release.status.conditions}["Conflict"] == "False"


def test_conflict_event_only_when_it_appears() -> None:
    sim = sc.progressing()
    other = release("1.0.0", name="b", status=sc.settled().release.status)
    sim.others = [other]
    first = sim.tick(MIN)
    second = sim.tick(MIN)
    assert [e.reason for e in first.events] == ["Conflict"]
    assert second.events == ()


def test_condition_transition_time_moves_only_when_status_changes() -> None:
    sim = sc.progressing()
    before = {c.type: c.last_transition_time for c in sim.release.status.conditions}
    converge(sim)
    sim.tick(10 * MIN)  # step promotes: phase unchanged
    after = {c.type: c.last_transition_time for c in sim.release.status.conditions}
    assert before == after
    assert all(
        c.observed_generation == sim.release.generation for c in sim.release.status.conditions
    )


def test_history_is_bounded() -> None:
    sim = sc.settled()
    for i in range(25):
        sim.edit(version=f"3.0.{i}")
        sim.tick()
        sim.tick(verification=refused(f"3.0.{i}", at=sim.now))
    assert len(sim.release.status.history) == 20
    assert sim.release.status.history[-1].version == "3.0.24"


def test_history_records_revision_from_source_annotations() -> None:
    from modelfleet.core import Source

    sim = sc.settled()
    sim.edit(version="2.0.0")
    sim.release = replace(sim.release, source=Source(revision="abc123"))
    sim.tick()
    sim.tick(verification=refused(at=sim.now))
    assert sim.release.status.source == Source(revision="abc123")
    assert sim.release.status.history[-1].revision == "abc123"


def test_empty_cohort_passes_but_still_bakes() -> None:
    sim = sc.progressing()
    steps = (
        Step("nobody", selector=LabelSelector.of({"ring": "none"}), bake=timedelta(minutes=5)),
        Step("all", percent=100),
    )
    sim.edit(steps=steps)
    sim.tick()
    assert sim.release.status.rollout.gates.reason == "NoGatewaysAssigned"  # type: ignore[union-attr]
    sim.tick(4 * MIN)
    assert sim.step == 0
    sim.tick(MIN)
    assert sim.step == 1


def test_unreachable_gateways_do_not_hold_convergence_but_lower_the_reporting_ratio() -> None:
    r = release(gates=Gates(min_reporting_ratio=0.5))
    st = sc.progressing().release.status
    r = replace(r, status=st)
    told = Sim(release=r).told()
    canaries = sorted(n for n, v in told.items() if v == "2.0.0")
    from .factories import gateway

    gws = [
        gateway(n, running="2.0.0") if i % 2 else gateway(n, seen=T0 - timedelta(hours=1))
        for i, n in enumerate(canaries)
    ]
    d = decide(r, FleetView(gws, [r]), T0 + timedelta(seconds=1))
    gates = d.status.rollout.gates
    assert gates is not None and gates.result.value == "Pass"
    assert gates.reporting_ratio == pytest.approx(
        sum(i % 2 for i in range(len(canaries))) / len(canaries), abs=1e-3
    )


def test_gates_counted_on_target_digest_only() -> None:
    sim = sc.progressing()
    canary = next(n for n, v in sim.told().items() if v == "2.0.0")
    d = sim.tick(MIN)
    assert d.status.rollout.cohorts[0].active == d.status.rollout.cohorts[0].assigned
    sim.lagging = True
    sim.running[canary] = ("2.0.0-other", "Active")
    d = sim.tick(MIN)
    assert d.status.rollout.gates.result.value == "Wait"  # type: ignore[union-attr]


def test_cohort_counts_are_per_step_and_sum_to_the_fleet() -> None:
    sim = sc.progressing()
    d = sim.tick(MIN)
    cohorts = d.status.rollout.cohorts
    assert [c.name for c in cohorts] == ["canary", "early", "fleet"]
    assert sum(c.assigned for c in cohorts) == sim.size
    assert cohorts[0].active == cohorts[0].assigned == cohorts[0].reporting
    assert cohorts[1].active == 0


def test_digest_helper_is_stable() -> None:
    assert digest("1") == digest("1") != digest("2")


def test_removing_steps_mid_rollout_clamps_to_the_last_step() -> None:
    sim = sc.progressing()
    converge(sim)
    sim.tick(10 * MIN)
    converge(sim)
    assert sim.step == 1
    sim.edit(steps=(Step("all", percent=100, bake=timedelta(minutes=1)),))
    sim.tick()
    assert (sim.step, sim.release.status.rollout.step_name) == (0, "all")
    assert set(sim.told().values()) == {"2.0.0"}
    sim.tick(MIN)
    sim.tick(MIN)
    assert sim.phase == "Succeeded"


def test_requeue_after_points_at_the_deadline_while_waiting() -> None:
    sim = sc.progressing()
    sim.lagging = True
    d = sim.tick(5 * MIN)
    assert d.requeue_after == 10 * MIN + timedelta(milliseconds=1)
