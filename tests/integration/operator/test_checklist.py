"""The release checklist as the go-live gate, with the real operator and API server.

A release whose checklist does not hold is Blocked: no gateway hears of it, ``status.checklist``
and the message name each unmet item, ``kubectl get mr`` shows the phase and the items; once the
item is met (an owner recorded, the first cohort reporting) it goes live by itself. Which items
are required comes from the operator's ``--release-checklist`` or the TrustPolicy's
``spec.releaseChecklist``, which wins.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from modelfleet.api import GROUP, VERSION
from modelfleet.devcluster import ControlPlane

from .artifacts import Artifacts, release_body
from .cluster import Api, desired_versions, wait_for
from .fleet import SimulatedFleet
from .operatorproc import OperatorProcess, artifact_sources

pytestmark = pytest.mark.cluster

OWNER = {"name": "ml-platform", "contact": "oncall@example.com"}


@pytest.fixture
def checklist_operator(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator with a cluster-wide release checklist: an owner must be recorded."""
    extra = (*artifact_sources(tmp_path), "--release-checklist", "Owner")
    proc = OperatorProcess(control_plane, namespace, tmp_path, extra=extra)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def require(artifacts: Artifacts, items: list[str]) -> None:
    """Set the TrustPolicy's ``spec.releaseChecklist.required``."""
    signed = artifacts.sign("1.0.0")
    doc = yaml.safe_load(signed.policy_path.read_text())
    doc["metadata"]["name"] = artifacts.policy
    doc["spec"]["releaseChecklist"] = {"required": items}
    artifacts.cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))


def blocked_on(api: Api, version: str, items: list[str]) -> dict[str, Any] | None:
    st = api.status("detector")
    unmet = [u["item"] for u in (st.get("checklist") or {}).get("unmet", [])]
    ok = st.get("phase") == "Blocked" and unmet == items
    ok = ok and (st.get("target") or {}).get("version") == version
    return st if ok else None


def phase_is(api: Api, phase: str, stable: str) -> dict[str, Any] | None:
    st = api.status("detector")
    ok = st.get("phase") == phase and (st.get("stable") or {}).get("version") == stable
    return st if ok else None


def test_blocked_release_names_each_unmet_item_then_goes_live_once_met(
    api: Api,
    fleet: SimulatedFleet,
    artifacts: Artifacts,
    checklist_operator: OperatorProcess,
    control_plane: ControlPlane,
) -> None:
    fleet.create(10)
    fleet.start()
    one_step = [{"name": "all", "percent": 100, "bake": "1s"}]

    # The cluster default requires an owner: a first release without one reaches nobody.
    api.apply_release(release_body("detector", "1.0.0", artifacts, steps=one_step))
    st = wait_for(lambda: blocked_on(api, "1.0.0", ["Owner"]), 60, what="1.0.0 Blocked on Owner")
    assert st["reason"] == "ChecklistUnmet" and "Owner (no owner recorded" in st["message"]
    assert st["checklist"]["required"] == ["Owner"]
    assert set(desired_versions(api).values()) == {None}
    stalled = next(c for c in st["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "ChecklistUnmet")
    shown = control_plane.kubectl("get", "mr", "detector", "-n", api.namespace).stdout
    assert "Blocked" in shown, shown  # the phase column; the items with -o wide
    wide = control_plane.kubectl("get", "mr", "detector", "-n", api.namespace, "-o", "wide")
    assert "UNMET" in wide.stdout and "Owner" in wide.stdout, wide.stdout
    api.wait_for_events("detector", "ChecklistUnmet", type="Warning")

    # Recording the owner (a spec change, as a Git commit would) lets it go live by itself.
    api.patch_release("detector", {"spec": {"owner": OWNER}})
    wait_for(lambda: phase_is(api, "Succeeded", "1.0.0"), 60, what="1.0.0 to go live")

    # The TrustPolicy's checklist wins over the default. 2.0.0 names no owner and its first
    # step selects no gateway yet: Blocked, naming both items; every gateway keeps 1.0.0.
    require(artifacts, ["Signed", "RollbackTarget", "Telemetry", "Owner"])
    canary_first = [
        {"name": "canary", "selector": {"matchLabels": {"ring": "canary"}}, "bake": "1s"},
        {"name": "fleet", "percent": 100, "bake": "1s"},
    ]
    api.apply_release(release_body("detector", "2.0.0", artifacts, steps=canary_first))
    st = wait_for(
        lambda: blocked_on(api, "2.0.0", ["Telemetry", "Owner"]), 60, what="2.0.0 Blocked"
    )
    assert "Telemetry (the first step canary selects no gateway)" in st["message"]
    assert set(desired_versions(api).values()) == {"1.0.0"}
    wide = control_plane.kubectl("get", "mr", "detector", "-n", api.namespace, "-o", "wide")
    assert "Telemetry,Owner" in wide.stdout, wide.stdout

    # Two reporting gateways join the first step: only the owner is missing now.
    for name in ("gw-0000", "gw-0001"):
        api.custom.patch_namespaced_custom_object(
            GROUP, VERSION, api.namespace, "edgegateways", name,
            {"metadata": {"labels": {"ring": "canary"}}},
        )  # fmt: skip
        fleet.labels[name] = {"ring": "canary"}
    wait_for(lambda: blocked_on(api, "2.0.0", ["Owner"]), 60, what="only Owner unmet")
    assert set(desired_versions(api).values()) == {"1.0.0"}

    api.patch_release("detector", {"spec": {"owner": OWNER}})
    wait_for(lambda: phase_is(api, "Succeeded", "2.0.0"), 90, what="2.0.0 to go live")
    api.wait_for_events("detector", "ChecklistMet")
    st = api.status("detector")
    assert st["checklist"]["unmet"] == []


def test_an_owner_without_a_contact_is_refused_naming_the_field(
    api: Api, artifacts: Artifacts
) -> None:
    body = release_body("detector", "1.0.0", artifacts)
    body["spec"]["owner"] = {"name": "ml-platform", "contact": " "}
    with pytest.raises(k8s.ApiException) as refused:
        api.apply_release(body)
    assert refused.value.status == 422
    assert "spec.owner.contact must not be empty" in str(refused.value.body)


def test_an_unknown_checklist_item_in_a_trust_policy_is_refused(
    artifacts: Artifacts, control_plane: ControlPlane
) -> None:
    signed = artifacts.sign("1.0.0")
    doc = yaml.safe_load(signed.policy_path.read_text())
    doc["metadata"]["name"] = artifacts.policy
    doc["spec"]["releaseChecklist"] = {"required": ["Owner", "Vibes"]}
    out = control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc), check=False)
    assert out.returncode != 0
    assert "spec.releaseChecklist.required[1]" in out.stderr and "Vibes" in out.stderr
