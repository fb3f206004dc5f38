"""Condition helpers: lastTransitionTime moves only when a condition's status changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelfleet.api import CONDITION_READY, is_true, set_condition, status_of
from modelfleet.core import Phase
from modelfleet.core.conditions import release_conditions

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_new_condition_gets_now() -> None:
    (c,) = set_condition((), "Ready", "False", reason="A", message="m", generation=1, now=T0)
    assert (c.status, c.last_transition_time, c.observed_generation) == ("False", T0, 1)


def test_same_status_keeps_transition_time_but_updates_reason() -> None:
    conds = set_condition((), "Ready", "False", reason="A", message="m", generation=1, now=T0)
    (c,) = set_condition(conds, "Ready", "False", reason="B", message="n", generation=2, now=T1)
    assert (c.reason, c.message, c.observed_generation, c.last_transition_time) == ("B", "n", 2, T0)


def test_status_change_moves_transition_time() -> None:
    conds = set_condition((), "Ready", "False", reason="A", message="m", generation=1, now=T0)
    conds = set_condition(conds, "Ready", "True", reason="A", message="m", generation=1, now=T1)
    assert conds[0].last_transition_time == T1
    assert is_true(conds, CONDITION_READY)


def test_other_conditions_untouched_and_order_kept() -> None:
    conds = set_condition((), "A", "True", reason="r", message="", generation=1, now=T0)
    conds = set_condition(conds, "B", "True", reason="r", message="", generation=1, now=T0)
    conds = set_condition(conds, "A", "False", reason="r", message="", generation=1, now=T1)
    assert [(c.type, c.status) for c in conds] == [("A", "False"), ("B", "True")]


def test_status_of() -> None:
    assert (status_of(True), status_of(False), status_of(None)) == ("True", "False", "Unknown")


def test_release_conditions_for_each_phase() -> None:
    # Reconciling / Stalled are what kstatus (Flux, kpt) reads: InProgress / Failed.
    expected = {
        Phase.VERIFYING: ("False", "Unknown", "True", "False", "True", "False"),
        Phase.PROGRESSING: ("False", "True", "True", "False", "True", "False"),
        Phase.PAUSED: ("False", "True", "False", "False", "True", "False"),
        Phase.SUCCEEDED: ("True", "True", "False", "False", "False", "False"),
        Phase.REJECTED: ("False", "False", "False", "True", "False", "True"),
        Phase.ABORTED: ("False", "True", "False", "True", "False", "True"),
    }
    for phase, (ready, verified, progressing, degraded, reconciling, stalled) in expected.items():
        conds = release_conditions(
            (),
            phase=phase,
            reason="r",
            message="m",
            has_target=True,
            conflict=None,
            generation=4,
            now=T0,
        )
        got = {c.type: c.status for c in conds}
        assert got == {
            "Ready": ready,
            "Verified": verified,
            "Progressing": progressing,
            "Degraded": degraded,
            "Conflict": "False",
            "Reconciling": reconciling,
            "Stalled": stalled,
        }, phase


def test_conflict_makes_a_succeeded_release_not_ready() -> None:
    conds = release_conditions(
        (),
        phase=Phase.SUCCEEDED,
        reason="r",
        message="m",
        has_target=False,
        conflict="3 gateways are also covered by other",
        generation=1,
        now=T0,
    )
    got = {c.type: (c.status, c.message) for c in conds}
    assert got["Ready"][0] == "False"
    assert got["Conflict"] == ("True", "3 gateways are also covered by other")


def test_conflict_stalls_a_release_in_any_phase() -> None:
    for phase in (Phase.PROGRESSING, Phase.SUCCEEDED):
        conds = release_conditions(
            (),
            phase=phase,
            reason="r",
            message="m",
            has_target=True,
            conflict="3 gateways are also covered by other",
            generation=1,
            now=T0,
        )
        got = {c.type: (c.status, c.reason) for c in conds}
        assert got["Stalled"] == ("True", "Conflict"), phase
        assert got["Reconciling"][0] == "False", "never Reconciling and Stalled at once"
        assert got["Ready"] == ("False", "Conflict")
