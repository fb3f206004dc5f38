"""TrustPolicy scope, for real: a release may name only a policy whose ``spec.namespaces`` /
``spec.namespaceSelector`` include its namespace (the real operator, the real API server, real
signatures). The attack: a user who may create ModelReleases in one namespace names a cluster
TrustPolicy meant for another (e.g. a lax development policy)."""

from __future__ import annotations

from typing import Any

import yaml

from .artifacts import Artifacts, release_body
from .cluster import Api, wait_for
from .operatorproc import OperatorProcess


def scope_policy(artifacts: Artifacts, **scope: Any) -> None:
    """Apply the artifacts' TrustPolicy with ``scope`` fields in its spec."""
    doc = yaml.safe_load(artifacts.sign("1.0.0").policy_path.read_text())
    doc["metadata"]["name"] = artifacts.policy
    doc["spec"].update(scope)
    artifacts.cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))


def settled(api: Api) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        st = api.status("detector")
        return st if st.get("phase") in ("Rejected", "Succeeded", "Progressing") else None

    result: dict[str, Any] = wait_for(check, 60, what="verification to decide")
    return result


def test_a_release_outside_the_policy_namespaces_is_rejected_naming_policy_and_scope(
    api: Api, artifacts: Artifacts, operator: OperatorProcess, namespace: str
) -> None:
    scope_policy(artifacts, namespaces=["team-dev"])
    api.apply_release(release_body("detector", "1.0.0", artifacts))
    st = settled(api)
    assert st["phase"] == "Rejected"
    assert st["verification"]["reason"] == (
        f"policy: TrustPolicy {artifacts.policy!r} does not apply to namespace {namespace!r}: "
        "its scope is namespaces [team-dev]"
    )
    api.wait_for_events("detector", "VerificationFailed", containing="team-dev")


def test_a_release_outside_the_policy_namespace_selector_is_rejected(
    api: Api, artifacts: Artifacts, operator: OperatorProcess, namespace: str
) -> None:
    scope_policy(artifacts, namespaceSelector={"matchLabels": {"env": "prod"}})
    api.apply_release(release_body("detector", "1.0.0", artifacts))
    st = settled(api)
    assert st["phase"] == "Rejected"
    assert st["verification"]["reason"].endswith("its scope is namespaceSelector env=prod")


def test_a_namespace_the_policy_lists_or_selects_may_name_it(
    api: Api, artifacts: Artifacts, operator: OperatorProcess, namespace: str
) -> None:
    artifacts.cp.kubectl("label", "namespace", namespace, "env=prod")
    scope_policy(
        artifacts, namespaces=["team-dev"], namespaceSelector={"matchLabels": {"env": "prod"}}
    )
    api.apply_release(release_body("detector", "1.0.0", artifacts))
    st = settled(api)
    assert st["verification"]["verified"] is True, st["verification"]
