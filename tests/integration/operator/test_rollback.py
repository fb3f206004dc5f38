"""Rollback = revert: back to stable at once, re-verified rollbacks, denied digests."""

from __future__ import annotations

import pytest

from .artifacts import Artifacts, release_body, rollout_steps
from .cluster import (
    Api,
    StatusRecorder,
    canary,
    desired_versions,
    establish,
    stable_is,
    status_where,
    wait_for,
)
from .fleet import SimulatedFleet
from .operatorproc import OperatorProcess

pytestmark = pytest.mark.cluster

LONG_BAKE = rollout_steps("1h", "1h", "2s")


def test_spec_equal_to_stable_during_a_canary_ends_it_at_once(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, operator: OperatorProcess
) -> None:
    establish(api, fleet, artifacts, "1.0.0", gateways=40)
    canary(api, artifacts, "2.0.0", LONG_BAKE)
    api.apply_release(release_body("detector", "1.0.0", artifacts, steps=LONG_BAKE))
    st = wait_for(
        lambda: (s := api.status("detector")).get("reason") == "Reverted" and s, 20, what="revert"
    )
    assert st["phase"] == "Succeeded"
    assert "target" not in st
    assert st["history"][-1]["outcome"] == "Reverted"
    assert set(desired_versions(api).values()) == {"1.0.0"}


def test_previously_stable_version_is_reverified_and_reaches_every_gateway_in_one_step(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, operator: OperatorProcess
) -> None:
    first = establish(api, fleet, artifacts, "1.0.0", gateways=40)
    establish(api, fleet, artifacts, "2.0.0")
    recorder = StatusRecorder(api, "detector").start()
    try:
        api.apply_release(release_body("detector", "1.0.0", artifacts))
        st = status_where(api, "rollback to succeed", stable_is("1.0.0"), 40)
    finally:
        recorder.stop()
    rolling = [s for s in recorder.revisions if s.get("phase") in ("Progressing", "Paused")]
    assert rolling, "the rollback went through Progressing"
    assert {s["rollout"]["step"] for s in rolling} == {2}, "every gateway at once"
    assert rolling[0]["reason"] == "ImmediateRollback"
    # Verified again against today's policy, not taken from history.
    assert st["stable"]["verification"]["at"] > first["stable"]["verification"]["at"]
    assert set(desired_versions(api).values()) == {"1.0.0"}


def test_denied_digest_is_refused_even_as_a_rollback(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, operator: OperatorProcess
) -> None:
    establish(api, fleet, artifacts, "1.0.0", gateways=20)
    establish(api, fleet, artifacts, "2.0.0")
    artifacts.deny("1.0.0")
    api.apply_release(release_body("detector", "1.0.0", artifacts))
    st = wait_for(
        lambda: (s := api.status("detector")).get("phase") == "Rejected" and s, 30, what="Rejected"
    )
    assert st["verification"]["reason"].startswith("denylist:")
    assert st["stable"]["version"] == "2.0.0"
    assert set(desired_versions(api).values()) == {"2.0.0"}
