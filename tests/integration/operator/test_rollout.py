"""A rollout end to end: verified, promoted step by step after each bake, Succeeded."""

from __future__ import annotations

import pytest

from .artifacts import Artifacts, release_body
from .cluster import Api, desired_versions, establish, wait_for
from .fleet import SimulatedFleet
from .operatorproc import OperatorProcess
from .reports import StatusWriter

pytestmark = pytest.mark.cluster


def test_three_step_rollout_to_200_gateways_promotes_step_by_step(
    api: Api, artifacts: Artifacts, written_fleet: StatusWriter, operator: OperatorProcess
) -> None:
    # 200 simulated agents in the test process did not converge within establish()'s minute on
    # a loaded two-core machine: this one counts status writes at fleet scale, so its 200
    # gateways are written directly (the other tests here run real agents).
    fleet = written_fleet
    establish(api, fleet, artifacts, "1.0.0", gateways=200, steps=None)
    before = operator.writes().get("status", 0)
    steps_seen: list[int] = []

    def progressed() -> bool:
        st = api.status("detector")
        if st.get("phase") == "Progressing" and st.get("target", {}).get("version") == "2.0.0":
            step = st["rollout"]["step"]
            if not steps_seen or steps_seen[-1] != step:
                steps_seen.append(step)
        return st.get("phase") == "Succeeded" and st.get("stable", {}).get("version") == "2.0.0"

    api.apply_release(release_body("detector", "2.0.0", artifacts))
    wait_for(progressed, 90, interval=0.1, what="2.0.0 to succeed")
    assert steps_seen == [0, 1, 2]
    st = api.status("detector")
    assert "target" not in st
    assert set(desired_versions(api).values()) == {"2.0.0"}
    assert [(h["version"], h["outcome"]) for h in st["history"]] == [
        ("1.0.0", "Succeeded"),
        ("2.0.0", "Succeeded"),
    ]
    assert sum(c["assigned"] for c in st["rollout"]["cohorts"]) == 200
    assert {c["name"] for c in st["rollout"]["cohorts"]} == {"canary", "half", "fleet"}
    # Membership is computed, not written: a whole rollout is a handful of status writes.
    assert operator.writes()["status"] - before < 40
    # Finalizer-less, and nothing of kopf's stored on the object.
    meta = api.release("detector")["metadata"]
    assert not meta.get("finalizers")
    assert not [k for k in meta.get("annotations") or {} if "kopf" in k or "operator." in k]
    api.wait_for_events("detector", "Verified")
    api.wait_for_events("detector", "BakeCompleted")


def test_release_fetched_over_http_is_verified_and_rolled_out(
    api: Api,
    artifacts: Artifacts,
    fleet: SimulatedFleet,
    operator: OperatorProcess,
    http_base: str,
) -> None:
    st = establish(api, fleet, artifacts, "1.0.0", gateways=20, base_url=http_base)
    assert st["stable"]["uri"].startswith(http_base)
    assert st["stable"]["verification"]["verified"] is True
    assert st["stable"]["verification"]["digest"] == artifacts.sign("1.0.0").digest


def test_rejected_artifact_changes_no_gateway_desired_state(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, operator: OperatorProcess
) -> None:
    establish(api, fleet, artifacts, "1.0.0", gateways=30)
    body = release_body("detector", "2.0.0", artifacts)
    # 2.0.0's bytes with 1.0.0's signature: the digest matches, the signature does not.
    body["spec"]["artifact"]["signature"]["uri"] = artifacts.sign("1.0.0").signature.as_uri()
    api.apply_release(body)
    st = wait_for(
        lambda: (s := api.status("detector")).get("phase") == "Rejected" and s, 30, what="Rejected"
    )
    assert st["verification"]["verified"] is False
    assert st["verification"]["reason"].split(":")[0] in ("integrity", "signature")
    assert "target" not in st
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds["Verified"] == "False" and conds["Degraded"] == "True"
    assert set(desired_versions(api).values()) == {"1.0.0"}
    api.wait_for_events("detector", "VerificationFailed")


def test_missing_artifact_is_rejected_with_the_reason(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, operator: OperatorProcess
) -> None:
    establish(api, fleet, artifacts, "1.0.0", gateways=10)
    body = release_body("detector", "2.0.0", artifacts)
    body["spec"]["artifact"]["uri"] = (artifacts.root / "nonexistent" / "model.bin").as_uri()
    api.apply_release(body)
    st = wait_for(
        lambda: (s := api.status("detector")).get("phase") == "Rejected" and s, 30, what="Rejected"
    )
    assert "no such file" in st["verification"]["reason"]
    assert set(desired_versions(api).values()) == {"1.0.0"}


def test_status_source_names_the_git_commit_even_without_argo_cd(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, operator: OperatorProcess
) -> None:
    fleet.create(5)
    fleet.start()
    body = release_body("detector", "1.0.0", artifacts, steps=[{"name": "all", "percent": 100}])
    body["metadata"]["annotations"] = {
        # Tracked by an Argo CD Application that this cluster does not have (no CRD at all):
        "argocd.argoproj.io/tracking-id": (
            f"fleet:modelfleet.dev/ModelRelease:{api.namespace}/detector"
        ),
        "modelfleet.dev/git-repo": "https://git.example/fleet.git",
        "modelfleet.dev/git-revision": "0123456789abcdef0123456789abcdef01234567",
        "modelfleet.dev/git-path": "releases/detector.yaml",
    }
    api.apply_release(body)
    st = wait_for(
        lambda: (s := api.status("detector")).get("phase") == "Succeeded" and s, 40, what="done"
    )
    assert st["source"] == {
        "repoURL": "https://git.example/fleet.git",
        "revision": "0123456789abcdef0123456789abcdef01234567",
        "path": "releases/detector.yaml",
    }
    assert st["history"][-1]["revision"] == "0123456789abcdef0123456789abcdef01234567"
