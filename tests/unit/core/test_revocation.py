"""Revocation of the version gateways run now: decide() and desired_state() with deniedDigests."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from modelfleet.api import status_from_dict, status_patch, status_to_dict
from modelfleet.core import (
    Gateway,
    ModelState,
    ModelStateKind,
    Phase,
    Verification,
    desired_state,
)

from . import scenarios as sc
from .factories import MODEL, NS, digest, verified
from .sim import Sim

POLICY = "prod-signers"
MODEL_DIGEST = "sha256:" + "ab" * 32


def revoke(sim: Sim, *digests: str) -> None:
    sim.revocations = {POLICY: frozenset(digests)}


def condition(sim: Sim, type_: str) -> tuple[str, str]:
    cond = sim.release.status.condition(type_)
    assert cond is not None
    return cond.status, cond.reason


def told(sim: Sim, gateway: Gateway) -> str | None:
    a = desired_state(gateway, [sim.release]).get(MODEL)
    return None if a is None or a.snapshot is None else a.snapshot.version


def running(version: str, state: ModelStateKind = ModelStateKind.ACTIVE) -> Gateway:
    return Gateway("gw-new", NS, {}, {MODEL: ModelState(MODEL, version, digest(version), state)})


def test_revoking_the_stable_a_spec_names_rejects_it_at_once_with_an_event() -> None:
    sim = sc.settled()
    revoke(sim, digest("1.0.0"))
    d = sim.tick()
    st = sim.release.status
    assert (st.phase, st.reason) == (Phase.REJECTED, "StableRevoked")
    assert st.stable is not None and st.stable.revoked
    assert st.verification is not None and st.verification.reason.startswith("denylist:")
    assert st.history[-1].outcome == "Rejected"
    assert {e.reason for e in d.events} >= {"StableRevoked"}
    assert all(e.type == "Warning" for e in d.events if e.reason == "StableRevoked")
    assert condition(sim, "Ready") == ("False", "StableRevoked")
    assert condition(sim, "Degraded") == ("True", "StableRevoked")
    assert status_to_dict(st)["stable"]["revoked"] is True
    # nothing more to write on the next look, and no second event
    again = sim.tick(timedelta(seconds=5))
    assert status_patch(again) == {} and again.events == ()


def test_a_revoked_stable_is_told_to_no_gateway() -> None:
    sim = sc.settled()
    assert told(sim, Gateway("gw-new", NS, {})) == "1.0.0"
    revoke(sim, digest("1.0.0"))
    sim.tick()
    assert told(sim, Gateway("gw-new", NS, {})) is None
    assert told(sim, running("0.9.0")) is None
    assert told(sim, running("1.0.0", ModelStateKind.DOWNLOADING)) is None
    # a gateway that runs it is told nothing either: it keeps what it runs (no instruction)
    assert told(sim, running("1.0.0")) is None
    assert set(sim.told().values()) == {None}


def test_revocation_by_the_model_digest_of_the_stable() -> None:
    sim = sc.settled()
    stable = sim.release.status.stable
    assert stable is not None
    with_model = replace(
        stable, verification=Verification(True, stable.digest, model_digest=MODEL_DIGEST)
    )
    sim.persisted = status_to_dict(replace(sim.release.status, stable=with_model))
    sim.release = replace(sim.release, status=status_from_dict(sim.persisted))
    revoke(sim, MODEL_DIGEST)
    sim.tick()
    assert (sim.phase, sim.release.status.reason) == ("Rejected", "StableRevoked")


def test_an_unknown_policy_keeps_the_persisted_flag() -> None:
    sim = sc.settled()
    revoke(sim, digest("1.0.0"))
    sim.tick()
    sim.revocations = {}  # the policy could not be read
    d = sim.tick(timedelta(seconds=5))
    assert status_patch(d) == {}
    assert sim.release.status.stable is not None and sim.release.status.stable.revoked


def test_lifting_the_revocation_settles_on_stable_again() -> None:
    sim = sc.settled()
    revoke(sim, digest("1.0.0"))
    sim.tick()
    revoke(sim)
    d = sim.tick(timedelta(seconds=5))
    assert (sim.phase, sim.release.status.reason) == ("Succeeded", "Reverted")
    assert sim.release.status.stable is not None and not sim.release.status.stable.revoked
    assert "StableReinstated" in {e.reason for e in d.events}
    assert condition(sim, "Degraded")[0] == "False"


def test_a_new_version_rolls_out_over_a_revoked_stable_and_clears_the_flag() -> None:
    sim = sc.settled()
    revoke(sim, digest("1.0.0"))
    sim.tick()
    sim.edit(version="2.0.0")
    sim.tick()
    assert sim.phase == "Verifying"
    assert condition(sim, "Degraded") == ("True", "StableRevoked")
    sim.tick(verification=verified("2.0.0", at=sim.now))
    assert sim.phase == "Progressing"
    assert condition(sim, "Degraded") == ("True", "StableRevoked")
    assert set(sim.told().values()) == {None, "2.0.0"}  # the canaries, and no instruction
    for _ in range(200):
        sim.tick(timedelta(minutes=1))
        if sim.phase == "Succeeded":
            break
    assert sim.phase == "Succeeded"
    st = sim.release.status
    assert st.stable is not None and st.stable.version == "2.0.0" and not st.stable.revoked
    assert condition(sim, "Degraded")[0] == "False"


def test_revoking_the_target_aborts_the_rollout() -> None:
    sim = sc.progressing()
    revoke(sim, digest("2.0.0"))
    d = sim.tick()
    assert (sim.phase, sim.release.status.reason) == ("Aborted", "TargetRevoked")
    assert any(e.type == "Warning" and e.reason == "TargetRevoked" for e in d.events)
    assert set(sim.told().values()) == {"1.0.0"}


def test_a_revert_to_a_revoked_stable_during_a_canary_ends_the_canary_rejected() -> None:
    sim = sc.progressing()
    revoke(sim, digest("1.0.0"))
    sim.edit(version="1.0.0")
    sim.tick()
    st = sim.release.status
    assert (st.phase, st.reason) == (Phase.REJECTED, "StableRevoked")
    assert st.target is None
    assert [h.outcome for h in st.history[-2:]] == ["Superseded", "Rejected"]
    # no instruction for anyone: the canaries keep 2.0.0, the rest keep 1.0.0
    assert set(sim.told().values()) == {None}
