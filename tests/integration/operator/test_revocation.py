"""Revocation holds for the version gateways run now, and for the model whatever its packing.

The real operator process against the real API server; gateways are enrolled for real and
played by simulated agents (the real agent code) through the real fleet API, which is also asked
what each gateway is told.
Revoking means what a platform team does: add a digest to the TrustPolicy's ``deniedDigests``.
"""

from __future__ import annotations

import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from modelfleet.trust import digest_file
from tests.trustkit import SignedModel, make_signed_model

from .artifacts import Artifacts, release_body, rollout_steps
from .cluster import Api, canary, desired_versions, establish, wait_for
from .fleet import SimulatedFleet
from .operatorproc import OperatorProcess

pytestmark = pytest.mark.cluster


LONG_BAKE = rollout_steps("1h", "2s")


def revoked_status(api: Api) -> dict[str, Any] | None:
    st = api.status("detector")
    ok = st.get("phase") == "Rejected" and st.get("reason") == "StableRevoked"
    return st if ok else None


def condition(st: dict[str, Any], type_: str) -> tuple[str, str]:
    cond = next(c for c in st["conditions"] if c["type"] == type_)
    return cond["status"], cond["reason"]


def test_revoking_the_running_stable_rejects_it_and_no_gateway_is_told_to_install_it(
    api: Api, artifacts: Artifacts, operator: OperatorProcess, fleet: SimulatedFleet
) -> None:
    gateways = fleet
    gateways.enroll("gw-old", tier="retail")
    gateways.start()  # gw-old runs an agent; gw-new, enrolled later, is not running yet
    body = release_body(
        "detector", "1.0.0", artifacts, selector={"tier": "retail"},
        steps=[{"name": "all", "percent": 100, "bake": "1s"}],
    )  # fmt: skip
    api.apply_release(body)
    v1 = artifacts.sign("1.0.0")

    def rolled_out() -> bool:
        st = api.status("detector")
        return st.get("phase") == "Succeeded" and (st.get("stable") or {}).get("version") == "1.0.0"

    wait_for(rolled_out, 60, interval=0.5, what="1.0.0 stable through the fleet API")
    gateways.enroll("gw-new", tier="retail")  # a gateway that does not run it
    wait_for(lambda: gateways.told("gw-new") == ("1.0.0", v1.digest), 20, what="gw-new told")

    artifacts.deny("1.0.0")  # the TrustPolicy changes; the release spec does not

    st = wait_for(lambda: revoked_status(api), 20, what="Rejected (StableRevoked)")
    assert st["stable"]["revoked"] is True and st["stable"]["version"] == "1.0.0"
    assert st["verification"]["verified"] is False
    assert st["verification"]["reason"].startswith("denylist:")
    assert condition(st, "Ready") == ("False", "StableRevoked")
    assert condition(st, "Degraded") == ("True", "StableRevoked")
    assert st["history"][-1]["outcome"] == "Rejected"
    wide = api.cp.kubectl("get", "mr", "-n", api.namespace, "-o", "wide").stdout.splitlines()
    assert "REVOKED" in wide[0].split() and "true" in wide[1].split()
    events = api.wait_for_events("detector", "StableRevoked", timeout=20)
    assert {e["type"] for e in events} == {"Warning"}

    # The real fleet API: neither gateway is told to install it; gw-old keeps what it runs.
    wait_for(lambda: gateways.told("gw-new") is None, 20, what="gw-new told nothing")
    assert gateways.told("gw-old") is None
    # Still so a while later (the operator's timer does not flip it back).
    time.sleep(3)
    assert revoked_status(api) is not None
    assert gateways.told("gw-new") is None


def test_a_revert_to_a_revoked_stable_during_a_canary_is_rejected(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, operator: OperatorProcess
) -> None:
    establish(api, fleet, artifacts, "1.0.0", gateways=20)
    canary(api, artifacts, "2.0.0", LONG_BAKE)

    artifacts.deny("1.0.0")
    st = wait_for(
        lambda: (s := api.status("detector")).get("stable", {}).get("revoked") and s,
        20,
        what="stable marked revoked",
    )
    assert st["phase"] in ("Progressing", "Paused")  # the canary of 2.0.0 goes on
    assert condition(st, "Degraded") == ("True", "StableRevoked")
    api.wait_for_events("detector", "StableRevoked")
    told = desired_versions(api)
    assert set(told.values()) <= {"2.0.0", None} and None in told.values()

    api.apply_release(release_body("detector", "1.0.0", artifacts, steps=LONG_BAKE))  # revert
    st = wait_for(lambda: revoked_status(api), 20, what="revert Rejected")
    assert "target" not in st
    assert [h["outcome"] for h in st["history"][-2:]] == ["Superseded", "Rejected"]
    assert set(desired_versions(api).values()) == {None}
    time.sleep(3)
    assert api.status("detector")["phase"] == "Rejected"


# --------------------------------------------------------------------------- repacked


def repack(signed: SignedModel, dest: Path) -> str:
    """The signed model's files in a new tar: new artifact bytes, the same model."""
    assert signed.model_dir is not None
    with tarfile.open(dest, "w") as tar:
        for path in sorted(signed.model_dir.rglob("*"), reverse=True):
            tar.add(path, path.relative_to(signed.model_dir).as_posix(), recursive=False)
    return digest_file(dest)


def archive_release(
    artifacts: Artifacts, version: str, artifact: Path, digest: str, signature: Path
) -> dict[str, Any]:
    body = release_body(
        "detector", "1.0.0", artifacts, steps=[{"name": "all", "percent": 100, "bake": "1s"}]
    )
    body["spec"]["version"] = version
    body["spec"]["artifact"] = {
        "uri": artifact.as_uri(),
        "digest": digest,
        "signature": {"uri": signature.as_uri()},
    }
    return body


def test_a_repacked_revoked_model_with_its_old_signature_is_rejected(
    api: Api, artifacts: Artifacts, fleet: SimulatedFleet, operator: OperatorProcess, tmp_path: Path
) -> None:
    signed = make_signed_model(
        tmp_path / "archive", archive=True, key=artifacts.key, policy_name=artifacts.policy
    )
    fleet.create(10)
    fleet.start()
    api.apply_release(
        archive_release(artifacts, "1.0.0", signed.artifact, signed.digest, signed.signature)
    )
    st = wait_for(
        lambda: (s := api.status("detector")).get("phase") == "Succeeded" and s, 60, what="1.0.0"
    )
    verification = st["stable"]["verification"]
    assert verification["digest"] == signed.digest
    model_digest = verification["modelDigest"]
    assert model_digest.startswith("sha256:") and model_digest != signed.digest

    # Revoked by its artifact digest, the one the release names (as operators do).
    artifacts.denied.append(signed.digest)
    artifacts.apply_policy()
    wait_for(lambda: revoked_status(api), 20, what="stable revoked")

    repacked = tmp_path / "repacked.tar"
    new_digest = repack(signed, repacked)
    assert new_digest != signed.digest
    api.apply_release(archive_release(artifacts, "1.0.1", repacked, new_digest, signed.signature))
    st = wait_for(
        lambda: (
            (s := api.status("detector")).get("phase") == "Rejected"
            and (s.get("verification") or {}).get("digest") == new_digest
            and s
        ),
        40,
        what="the repacked artifact Rejected",
    )
    reason = st["verification"]["reason"]
    assert reason.startswith("denylist:"), reason
    assert model_digest in reason and signed.digest in reason
    assert set(desired_versions(api).values()) == {None}
