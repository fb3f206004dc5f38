"""A new spec supersedes a running rollout; two releases of one model on a gateway conflict."""

from __future__ import annotations

import time

import pytest

from .artifacts import Artifacts, release_body, rollout_steps
from .cluster import Api, desired_versions, establish, stable_is, status_where, wait_for
from .fleet import SimulatedFleet
from .operatorproc import OperatorProcess

pytestmark = pytest.mark.cluster


LONG_CANARY = rollout_steps("1h", "2s")


def test_spec_change_mid_rollout_supersedes_the_running_one(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, operator: OperatorProcess
) -> None:
    establish(api, fleet, artifacts, "1.0.0", gateways=40)
    api.apply_release(release_body("detector", "2.0.0", artifacts, steps=LONG_CANARY))
    wait_for(lambda: "2.0.0" in desired_versions(api).values(), 30, what="2.0.0 canary to be told")
    api.apply_release(release_body("detector", "3.0.0", artifacts))
    st = status_where(api, "3.0.0 to succeed", stable_is("3.0.0"), 60)
    outcomes = [(h["version"], h["outcome"]) for h in st["history"]]
    assert ("2.0.0", "Superseded") in outcomes
    assert outcomes[-1] == ("3.0.0", "Succeeded")
    assert set(desired_versions(api).values()) == {"3.0.0"}


def test_two_releases_for_one_model_on_one_gateway_set_conflict_and_change_nothing(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, operator: OperatorProcess
) -> None:
    tiers = lambda i: {"tier": "retail"} if i % 2 else {"tier": "depot"}  # noqa: E731
    establish(api, fleet, artifacts, "1.0.0", gateways=20, labels=tiers)
    before = desired_versions(api)
    other = release_body("detector-retail", "2.0.0", artifacts, selector={"tier": "retail"})
    api.apply_release(other)

    def both_conflicted() -> bool:
        for name in ("detector", "detector-retail"):
            conds = {c["type"]: c for c in api.status(name).get("conditions", [])}
            if conds.get("Conflict", {}).get("status") != "True":
                return False
        return True

    wait_for(both_conflicted, 30, what="Conflict on both releases")
    time.sleep(3)
    after = desired_versions(api)
    assert "2.0.0" not in after.values(), "the conflicting release reaches no gateway"
    for name, version in after.items():
        # Gateways both releases cover get no new instruction (they keep what they run).
        assert version == before[name] or version is None
    assert api.status("detector")["stable"]["version"] == "1.0.0"
    api.wait_for_events("detector-retail", "Conflict")
    # Resolving the overlap lets the second release go on.
    api.custom.delete_namespaced_custom_object(
        "modelfleet.dev", "v1alpha1", api.namespace, "modelreleases", "detector-retail"
    )

    def cleared() -> bool:
        conds = {c["type"]: c for c in api.status("detector").get("conditions", [])}
        return conds.get("Conflict", {}).get("status") == "False"

    wait_for(cleared, 30, what="Conflict to clear")
    assert set(desired_versions(api).values()) == {"1.0.0"}
