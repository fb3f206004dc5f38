"""The release checklist as the go-live gate: a verified target reaches no gateway until every
required item holds, and each unmet item is named."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from modelfleet.core import Phase, Provenance
from modelfleet.core.checklist import ChecklistItem, Unmet
from modelfleet.core.types import Owner

from . import scenarios as sc
from .factories import digest, verified
from .sim import Sim

OWNER = Owner("ml-platform", "oncall@example.com")
ALL = frozenset(ChecklistItem)


def _verify(sim: Sim, *, provenance: bool = True, version: str = "2.0.0") -> None:
    v = verified(version, at=sim.now)
    if provenance:
        v = replace(
            v, provenance=Provenance("https://slsa.dev/provenance/v1", "ci", "org/model", "main")
        )
    sim.tick(verification=v)


def _verified_stable(sim: Sim) -> None:
    """Give the settled stable the verification it would have had when it went live."""
    st = sim.release.status
    assert st.stable is not None
    stable = replace(st.stable, verification=verified(st.stable.version, at=sim.now))
    sim.release = replace(sim.release, status=replace(st, stable=stable))
    from modelfleet.api import status_to_dict

    sim.persisted = status_to_dict(sim.release.status)


def _ready_sim(required: frozenset[ChecklistItem]) -> Sim:
    """Verifying 2.0.0 with every item satisfiable: verified stable, owner, reporting fleet."""
    sim = sc.settled()
    _verified_stable(sim)
    sim.edit(version="2.0.0", owner=OWNER)
    sim.tick()
    assert sim.phase == "Verifying"
    sim.required = required
    return sim


def _unmet(sim: Sim) -> list[ChecklistItem]:
    checklist = sim.release.status.checklist
    assert checklist is not None
    return [u.item for u in checklist.unmet]


def test_nothing_required_goes_live_as_before_and_records_no_checklist() -> None:
    sim = sc.progressing()
    assert sim.release.status.checklist is None


def test_every_item_met_goes_live_and_records_what_held() -> None:
    sim = _ready_sim(ALL)
    _verify(sim)
    assert sim.phase == "Progressing"
    checklist = sim.release.status.checklist
    assert checklist is not None
    assert checklist.required == tuple(ChecklistItem) and checklist.unmet == ()
    assert "release checklist holds" in (sim.release.status.message or "")


@pytest.mark.parametrize(
    ("item", "spoil", "named"),
    [
        (ChecklistItem.OWNER, lambda s: s.edit(owner=None), "spec.owner"),
        (ChecklistItem.PROVENANCE, None, "without a provenance attestation"),
        (
            ChecklistItem.TELEMETRY,
            lambda s: s.unseen.update(s.names),
            "reported recently",
        ),
    ],
    ids=["owner", "provenance", "telemetry"],
)
def test_an_unmet_item_blocks_and_is_named(item: ChecklistItem, spoil: object, named: str) -> None:
    sim = _ready_sim(frozenset({item}))
    if callable(spoil):
        spoil(sim)
        sim.tick()
    _verify(sim, provenance=item is not ChecklistItem.PROVENANCE)
    status = sim.release.status
    assert status.phase is Phase.BLOCKED and status.reason == "ChecklistUnmet"
    assert _unmet(sim) == [item]
    assert item.value in (status.message or "") and named in (status.message or "")
    assert set(sim.told().values()) == {"1.0.0"}  # no gateway hears of 2.0.0


def test_a_missing_rollback_target_blocks_a_first_release() -> None:
    sim = sc.verifying()  # the settled stable carries no verification record
    sim.required = frozenset({ChecklistItem.ROLLBACK_TARGET})
    _verify(sim)
    assert sim.phase == "Blocked"
    assert sim.release.status.checklist == replace(
        sim.release.status.checklist,  # type: ignore[arg-type]
        unmet=(Unmet(ChecklistItem.ROLLBACK_TARGET, "stable 1.0.0 has no recorded verification"),),
    )


def test_a_revoked_stable_is_no_rollback_target() -> None:
    sim = _ready_sim(frozenset({ChecklistItem.ROLLBACK_TARGET}))
    sim.revocations = {"prod-signers": frozenset({digest("1.0.0")})}
    _verify(sim)
    assert sim.phase == "Blocked"
    assert "revoked" in sim.release.status.checklist.unmet[0].reason  # type: ignore[union-attr]


def test_each_unmet_item_is_named_in_checklist_order() -> None:
    sim = sc.verifying()
    sim.required = ALL
    _verify(sim, provenance=False)
    assert _unmet(sim) == [
        ChecklistItem.PROVENANCE,
        ChecklistItem.ROLLBACK_TARGET,
        ChecklistItem.OWNER,
    ]
    message = sim.release.status.message or ""
    assert all(i in message for i in ("Provenance (", "RollbackTarget (", "Owner ("))


def test_blocked_goes_live_by_itself_once_the_item_is_met() -> None:
    sim = sc.blocked()
    sim.tick(timedelta(minutes=1))
    assert sim.phase == "Blocked"  # nothing changed: still blocked, no new event
    assert sim.decisions[-1].events == ()
    sim.edit(owner=OWNER)
    d = sim.tick()
    assert (sim.phase, sim.release.status.reason) == ("Progressing", "ChecklistMet")
    assert sim.release.status.rollout.step == 0
    assert any(e.reason == "ChecklistMet" for e in d.events)


def test_the_trust_policy_decides_over_the_cluster_default() -> None:
    sim = sc.verifying()
    sim.required = frozenset({ChecklistItem.OWNER})
    sim.checklists = {"prod-signers": frozenset()}  # the policy requires nothing
    _verify(sim)
    assert sim.phase == "Progressing"


def test_the_trust_policy_can_require_more_than_the_default() -> None:
    sim = sc.verifying()
    sim.checklists = {"prod-signers": frozenset({ChecklistItem.OWNER})}
    _verify(sim)
    assert sim.phase == "Blocked" and _unmet(sim) == [ChecklistItem.OWNER]


@pytest.mark.parametrize(
    ("action", "phase", "reason"),
    [
        ("promote", "Blocked", "ChecklistUnmet"),  # the checklist is never skipped
        ("retry", "Verifying", "RetryRequested"),
        ("abort", "Aborted", "ManualAbort"),
    ],
)
def test_actions_while_blocked(action: str, phase: str, reason: str) -> None:
    sim = sc.blocked()
    sim.act(action, "x-1")
    d = sim.tick()
    assert (sim.phase, sim.release.status.reason) == (phase, reason)
    if action == "promote":
        assert [e.reason for e in d.events] == ["ActionIgnored"]
        assert set(sim.told().values()) == {"1.0.0"}
    else:
        assert sim.release.status.checklist is None or phase == "Aborted"


def test_revoking_the_blocked_target_aborts() -> None:
    sim = sc.blocked()
    sim.revocations = {"prod-signers": frozenset({digest("2.0.0")})}
    sim.tick()
    assert (sim.phase, sim.release.status.reason) == ("Aborted", "TargetRevoked")


def test_blocked_is_failed_for_kstatus_and_not_ready() -> None:
    sim = sc.blocked()
    st = sim.release.status
    stalled, ready = st.condition("Stalled"), st.condition("Ready")
    assert stalled is not None and stalled.status == "True"
    assert stalled.reason == "ChecklistUnmet" and "Owner" in stalled.message
    assert ready is not None and ready.status == "False"
    reconciling = st.condition("Reconciling")
    assert reconciling is not None and reconciling.status == "False"
