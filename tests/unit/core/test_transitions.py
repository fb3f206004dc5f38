"""Every edge of the phase transition table, driven through decide() and persisted status."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta

import pytest

from modelfleet.core import TRANSITIONS, Phase
from modelfleet.core.decide import Decision
from modelfleet.core.phases import can_transition
from modelfleet.core.types import Owner

from . import scenarios as sc
from .factories import digest, refused, verified
from .sim import Sim

Step = Callable[[], tuple[Sim, Decision]]


def _pending_to_verifying() -> tuple[Sim, Decision]:
    sim = sc.pending()
    return sim, sim.tick()


def _verifying_to_progressing() -> tuple[Sim, Decision]:
    sim = sc.verifying()
    return sim, sim.tick(verification=verified(at=sim.now))


def _verifying_to_rejected() -> tuple[Sim, Decision]:
    sim = sc.verifying()
    return sim, sim.tick(verification=refused(at=sim.now))


def _verifying_to_succeeded_on_revert() -> tuple[Sim, Decision]:
    sim = sc.verifying()
    sim.edit(version="1.0.0")
    return sim, sim.tick()


def _verifying_to_aborted_by_action() -> tuple[Sim, Decision]:
    sim = sc.verifying()
    sim.act("abort", "a-1")
    return sim, sim.tick()


def _progressing_to_paused_by_spec() -> tuple[Sim, Decision]:
    sim = sc.progressing()
    sim.edit(paused=True)
    return sim, sim.tick()


def _progressing_to_paused_inconclusive() -> tuple[Sim, Decision]:
    sim = sc.progressing()
    sim.silent = set(sim.names)
    sim.tick(timedelta(seconds=30))  # converged: waiting for the first reports (Progressing)
    return sim, sim.tick(timedelta(minutes=2))  # still none after the grace: Inconclusive


def _progressing_to_succeeded_last_step() -> tuple[Sim, Decision]:
    sim = sc.at_last_step()
    return sim, sim.tick(timedelta(seconds=5))


def _progressing_to_succeeded_on_revert() -> tuple[Sim, Decision]:
    sim = sc.progressing()
    sim.edit(version="1.0.0")
    return sim, sim.tick()


def _progressing_to_aborted_on_gate() -> tuple[Sim, Decision]:
    sim = sc.progressing()
    sim.errors = 500
    return sim, sim.tick(timedelta(seconds=30))


def _progressing_to_verifying_superseded() -> tuple[Sim, Decision]:
    sim = sc.progressing()
    sim.edit(version="3.0.0")
    return sim, sim.tick()


def _paused_to_progressing_on_resume() -> tuple[Sim, Decision]:
    sim = sc.paused_by_spec()
    sim.edit(paused=False)
    return sim, sim.tick(timedelta(seconds=5))


def _paused_to_progressing_when_conclusive() -> tuple[Sim, Decision]:
    sim = sc.paused_inconclusive()
    sim.silent = set()
    return sim, sim.tick(timedelta(seconds=5))


def _paused_to_succeeded_on_revert() -> tuple[Sim, Decision]:
    sim = sc.paused_by_spec()
    sim.edit(version="1.0.0")
    return sim, sim.tick()


def _paused_to_aborted_on_gate() -> tuple[Sim, Decision]:
    sim = sc.paused_by_spec()
    sim.p95 = 900.0
    return sim, sim.tick(timedelta(seconds=30))


def _paused_to_verifying_superseded() -> tuple[Sim, Decision]:
    sim = sc.paused_inconclusive()
    sim.edit(version="3.0.0")
    return sim, sim.tick()


def _succeeded_to_verifying() -> tuple[Sim, Decision]:
    sim = sc.settled()
    sim.edit(version="2.0.0")
    return sim, sim.tick()


def _rejected_to_verifying_on_spec_change() -> tuple[Sim, Decision]:
    sim = sc.rejected()
    sim.edit(signature="https://models.example.com/detector/2.0.0/fixed.sig")
    return sim, sim.tick()


def _rejected_to_succeeded_on_revert() -> tuple[Sim, Decision]:
    sim = sc.rejected()
    sim.edit(version="1.0.0")
    return sim, sim.tick()


def _aborted_to_verifying_on_retry() -> tuple[Sim, Decision]:
    sim = sc.aborted()
    sim.act("retry", "r-1")
    return sim, sim.tick()


def _aborted_to_succeeded_on_revert() -> tuple[Sim, Decision]:
    sim = sc.aborted()
    sim.edit(version="1.0.0")
    return sim, sim.tick()


def _revoke(sim: Sim, *versions: str) -> None:
    sim.revocations = {"prod-signers": frozenset(digest(v) for v in versions)}


def _succeeded_to_rejected_stable_revoked() -> tuple[Sim, Decision]:
    sim = sc.settled()
    _revoke(sim, "1.0.0")
    return sim, sim.tick()


def _progressing_to_rejected_on_revert_to_revoked() -> tuple[Sim, Decision]:
    sim = sc.progressing()
    _revoke(sim, "1.0.0")
    sim.edit(version="1.0.0")
    return sim, sim.tick()


def _progressing_to_aborted_target_revoked() -> tuple[Sim, Decision]:
    sim = sc.progressing()
    _revoke(sim, "2.0.0")
    return sim, sim.tick()


def _verifying_to_blocked_on_checklist() -> tuple[Sim, Decision]:
    sim = sc.blocked()
    return sim, sim.decisions[-1]


def _from_blocked(change: Callable[[Sim], object]) -> Step:
    """Blocked on the release checklist (no owner), then ``change``, then one decision."""

    def run() -> tuple[Sim, Decision]:
        sim = sc.blocked()
        change(sim)
        return sim, sim.tick()

    return run


def _revoke_stable_and_revert(sim: Sim) -> None:
    _revoke(sim, "1.0.0")
    sim.edit(version="1.0.0")


def _paused_to_rejected_on_revert_to_revoked() -> tuple[Sim, Decision]:
    sim = sc.paused_by_spec()
    _revoke(sim, "1.0.0")
    sim.edit(version="1.0.0")
    return sim, sim.tick()


def _aborted_to_rejected_on_revert_to_revoked() -> tuple[Sim, Decision]:
    sim = sc.aborted()
    _revoke(sim, "1.0.0")
    sim.edit(version="1.0.0")
    return sim, sim.tick()


CASES: list[tuple[Phase, Phase, str, Step]] = [
    (Phase.PENDING, Phase.VERIFYING, "NewVersion", _pending_to_verifying),
    (Phase.VERIFYING, Phase.PROGRESSING, "Verified", _verifying_to_progressing),
    (Phase.VERIFYING, Phase.REJECTED, "VerificationFailed", _verifying_to_rejected),
    (Phase.VERIFYING, Phase.SUCCEEDED, "Reverted", _verifying_to_succeeded_on_revert),
    (Phase.VERIFYING, Phase.ABORTED, "ManualAbort", _verifying_to_aborted_by_action),
    (Phase.PROGRESSING, Phase.PAUSED, "PausedBySpec", _progressing_to_paused_by_spec),
    (Phase.PROGRESSING, Phase.PAUSED, "Inconclusive", _progressing_to_paused_inconclusive),
    (Phase.PROGRESSING, Phase.SUCCEEDED, "BakeCompleted", _progressing_to_succeeded_last_step),
    (Phase.PROGRESSING, Phase.SUCCEEDED, "Reverted", _progressing_to_succeeded_on_revert),
    (Phase.PROGRESSING, Phase.ABORTED, "ErrorRateExceeded", _progressing_to_aborted_on_gate),
    (Phase.PROGRESSING, Phase.VERIFYING, "Superseded", _progressing_to_verifying_superseded),
    (
        Phase.PROGRESSING,
        Phase.REJECTED,
        "StableRevoked",
        _progressing_to_rejected_on_revert_to_revoked,
    ),
    (Phase.PROGRESSING, Phase.ABORTED, "TargetRevoked", _progressing_to_aborted_target_revoked),
    (Phase.VERIFYING, Phase.BLOCKED, "ChecklistUnmet", _verifying_to_blocked_on_checklist),
    (
        Phase.BLOCKED,
        Phase.PROGRESSING,
        "ChecklistMet",
        _from_blocked(lambda s: s.edit(owner=Owner("ml-platform", "oncall@example.com"))),
    ),
    (
        Phase.BLOCKED,
        Phase.VERIFYING,
        "Superseded",
        _from_blocked(lambda s: s.edit(version="3.0.0")),
    ),
    (Phase.BLOCKED, Phase.SUCCEEDED, "Reverted", _from_blocked(lambda s: s.edit(version="1.0.0"))),
    (Phase.BLOCKED, Phase.ABORTED, "ManualAbort", _from_blocked(lambda s: s.act("abort", "a-1"))),
    (Phase.BLOCKED, Phase.REJECTED, "StableRevoked", _from_blocked(_revoke_stable_and_revert)),
    (Phase.PAUSED, Phase.PROGRESSING, "Resumed", _paused_to_progressing_on_resume),
    (Phase.PAUSED, Phase.PROGRESSING, "GatesConclusive", _paused_to_progressing_when_conclusive),
    (Phase.PAUSED, Phase.SUCCEEDED, "Reverted", _paused_to_succeeded_on_revert),
    (Phase.PAUSED, Phase.ABORTED, "LatencyP95Exceeded", _paused_to_aborted_on_gate),
    (Phase.PAUSED, Phase.VERIFYING, "Superseded", _paused_to_verifying_superseded),
    (Phase.PAUSED, Phase.REJECTED, "StableRevoked", _paused_to_rejected_on_revert_to_revoked),
    (Phase.SUCCEEDED, Phase.VERIFYING, "NewVersion", _succeeded_to_verifying),
    (Phase.SUCCEEDED, Phase.REJECTED, "StableRevoked", _succeeded_to_rejected_stable_revoked),
    (Phase.REJECTED, Phase.VERIFYING, "NewVersion", _rejected_to_verifying_on_spec_change),
    (Phase.REJECTED, Phase.SUCCEEDED, "Reverted", _rejected_to_succeeded_on_revert),
    (Phase.ABORTED, Phase.VERIFYING, "RetryRequested", _aborted_to_verifying_on_retry),
    (Phase.ABORTED, Phase.SUCCEEDED, "Reverted", _aborted_to_succeeded_on_revert),
    (Phase.ABORTED, Phase.REJECTED, "StableRevoked", _aborted_to_rejected_on_revert_to_revoked),
]


@pytest.mark.parametrize(
    ("source", "dest", "reason", "run"),
    CASES,
    ids=[f"{s.value}->{d.value}:{r}" for s, d, r, _ in CASES],
)
def test_transition(source: Phase, dest: Phase, reason: str, run: Step) -> None:
    sim, decision = run()
    assert sim.decisions[-2].status.phase is source if len(sim.decisions) > 1 else True
    assert decision.status.phase is dest
    assert decision.status.reason == reason
    changes = [e for e in decision.events if e.message.startswith(f"{source.value} -> ")]
    assert changes, decision.events
    assert changes[0].reason == reason
    warning = (Phase.ABORTED, Phase.REJECTED, Phase.BLOCKED)
    assert changes[0].type == ("Warning" if dest in warning else "Normal")


def test_every_edge_of_the_table_is_exercised() -> None:
    edges = {(s, d) for s, dests in TRANSITIONS.items() for d in dests}
    covered = {(s, d) for s, d, _, _ in CASES}
    assert edges == covered


@pytest.mark.parametrize("source", list(Phase))
@pytest.mark.parametrize("dest", list(Phase))
def test_can_transition_is_the_table(source: Phase, dest: Phase) -> None:
    assert can_transition(source, dest) is (source == dest or dest in TRANSITIONS[source])


def test_every_phase_has_a_docstring() -> None:
    import ast
    import inspect

    from modelfleet.core import phases

    tree = ast.parse(inspect.getsource(phases.Phase))
    body = tree.body[0].body  # type: ignore[attr-defined]
    documented = {
        stmt.targets[0].id
        for stmt, nxt in itertools.pairwise(body)
        if isinstance(stmt, ast.Assign)
        and isinstance(nxt, ast.Expr)
        and isinstance(nxt.value, ast.Constant)
    }
    assert documented == {p.name for p in Phase}
