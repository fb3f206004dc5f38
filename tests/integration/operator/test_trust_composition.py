"""A two-person TrustPolicy (``spec.require: all``), for real: the real operator, the real API
server, real signatures. The attack: one stolen release key signs a model; the policy asks for
the security team's key as well, so the release is Rejected naming the authority that did not sign.
A signature set carrying both signatures verifies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modelfleet.trust import combine_signatures, sign_model
from tests.integration.operator.artifacts import Artifacts, release_body
from tests.integration.operator.cluster import Api, wait_for
from tests.integration.operator.operatorproc import OperatorProcess
from tests.trustkit.models import make_key, public_pem


def decided(api: Api, name: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        st = api.status(name)
        return st if st.get("phase") in ("Rejected", "Succeeded", "Progressing") else None

    result: dict[str, Any] = wait_for(check, 60, what=f"verification of {name} to decide")
    return result


def test_an_all_of_policy_rejects_one_signer_and_verifies_a_signature_set(
    api: Api, artifacts: Artifacts, operator: OperatorProcess, tmp_path: Path
) -> None:
    security = make_key()
    doc = yaml.safe_load(artifacts.sign("1.0.0").policy_path.read_text())
    doc["metadata"]["name"] = artifacts.policy
    doc["spec"]["require"] = "all"
    doc["spec"]["authorities"].append(
        {"name": "security-key", "key": {"data": public_pem(security)}}
    )
    artifacts.cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))

    # the release key alone (its holder, or whoever stole it) is not enough
    api.apply_release(release_body("detector", "1.0.0", artifacts))
    st = decided(api, "detector")
    assert st["phase"] == "Rejected"
    assert st["verification"]["reason"].startswith(
        "signature: the policy requires every authority, and authority 'security-key' did not sign"
    )

    # both keys signed: the release names a signature set
    both = artifacts.sign("1.0.1")
    second = sign_model(both.artifact, tmp_path / "security.sig", private_key=security)
    combine_signatures([both.signature, second], both.signature)
    api.apply_release(release_body("classifier", "1.0.1", artifacts, model="classifier"))
    st = decided(api, "classifier")
    assert st["verification"]["verified"] is True, st["verification"]
    assert st["verification"]["authority"] == "release-key (key), security-key (key)"
