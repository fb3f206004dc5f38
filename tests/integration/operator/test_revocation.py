"""Revocation holds for the version gateways run now, and for the model whatever its packing.

The real operator process against the real API server; the real fleet API answers the gateways.
Revoking means what a platform team does: add a digest to the TrustPolicy's ``deniedDigests``.
"""

from __future__ import annotations

import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from modelfleet.devcluster import ControlPlane
from modelfleet.enrollment import enroll_gateway
from modelfleet.fleet.process import FleetAPIProcess, start_fleet_api
from modelfleet.trust import digest_file
from tests.kubekit import fleet_pki, with_kube
from tests.trustkit import SignedModel, make_signed_model

from .artifacts import Artifacts, release_body
from .cluster import MODEL, Api, desired_versions, establish, wait_for
from .operatorproc import OperatorProcess
from .reports import StatusWriter

pytestmark = pytest.mark.cluster

STATUS_WRITTEN_BECAUSE = (
    "with simulated agents, test_a_revert_to_a_revoked_stable_during_a_canary_is_rejected "
    "failed in one run out of four under heavy load (its StableRevoked Event read once, right "
    "after the status showed the rejection, may not be posted yet): moves once the Event is "
    "waited for"
)


LONG_BAKE = [
    {"name": "canary", "percent": 10, "bake": "1h"},
    {"name": "fleet", "percent": 100, "bake": "2s"},
]


def revoked_status(api: Api) -> dict[str, Any] | None:
    st = api.status("detector")
    ok = st.get("phase") == "Rejected" and st.get("reason") == "StableRevoked"
    return st if ok else None


def condition(st: dict[str, Any], type_: str) -> tuple[str, str]:
    cond = next(c for c in st["conditions"] if c["type"] == type_)
    return cond["status"], cond["reason"]


# --------------------------------------------------------------------------- the fleet API


@dataclass
class Gateways:
    """Enrolled gateways that talk to the real fleet API over mutual TLS."""

    cp: ControlPlane
    ns: str
    ca: Any
    server: FleetAPIProcess
    folder: Path

    def enroll(self, name: str, **labels: str) -> None:
        bundle = with_kube(self.cp.kubeconfig, lambda kube: enroll_gateway(
            kube, name, labels, namespace=self.ns, ca=self.ca, fleet_url=self.server.url
        ))  # fmt: skip
        bundle.write(self.folder / name)

    def _session(self, name: str) -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        s.cert = (str(self.folder / name / "client.crt"), str(self.folder / name / "client.key"))
        s.verify = str(self.folder / name / "ca.crt")
        return s

    def told(self, name: str) -> tuple[str, str] | None:
        """What the fleet API tells gateway ``name`` for the model: (version, digest) or None."""
        with self._session(name) as s:
            r = s.get(self.server.url + "/v1/desired", timeout=30)
        r.raise_for_status()
        models = [m for m in r.json()["models"] if m["model"] == MODEL]
        return (models[0]["version"], models[0]["digest"]) if models else None

    def report_active(self, name: str, version: str, digest: str) -> None:
        body = {
            "agentVersion": "test",
            "models": [{"model": MODEL, "version": version, "digest": digest, "slot": "A",
                        "state": "Active", "message": ""}],
            "health": [{"model": MODEL, "version": version, "window": "60s", "requests": 1000,
                        "errors": 0, "latencyP50Ms": 3.0, "latencyP95Ms": 9.0}],
        }  # fmt: skip
        with self._session(name) as s:
            r = s.post(self.server.url + "/v1/report", json=body, timeout=30)
        assert r.status_code < 300, r.text


@pytest.fixture
def gateways(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Gateways]:
    ca = fleet_pki(control_plane.kubeconfig, namespace)
    server = start_fleet_api(
        kubeconfig=control_plane.kubeconfig, namespace=namespace,
        log_path=tmp_path / "fleet-api.log",
        extra_args=["--rate-limit", "1000", "--rate-burst", "1000"],
    )  # fmt: skip
    try:
        yield Gateways(control_plane, namespace, ca, server, tmp_path / "gateways")
    finally:
        server.stop()


def test_revoking_the_running_stable_rejects_it_and_no_gateway_is_told_to_install_it(
    api: Api, artifacts: Artifacts, operator: OperatorProcess, gateways: Gateways
) -> None:
    gateways.enroll("gw-old", tier="retail")
    body = release_body(
        "detector", "1.0.0", artifacts, selector={"tier": "retail"},
        steps=[{"name": "all", "percent": 100, "bake": "1s"}],
    )  # fmt: skip
    api.apply_release(body)
    v1 = artifacts.sign("1.0.0")

    def rolled_out() -> bool:
        told = gateways.told("gw-old")
        if told is not None:
            gateways.report_active("gw-old", *told)
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
    events = wait_for(
        lambda: [e for e in api.events("detector") if e["reason"] == "StableRevoked"] or None,
        20,
        what="StableRevoked events",
    )
    assert {e["type"] for e in events} == {"Warning"}

    # The real fleet API: neither gateway is told to install it; gw-old keeps what it runs.
    wait_for(lambda: gateways.told("gw-new") is None, 20, what="gw-new told nothing")
    assert gateways.told("gw-old") is None
    # Still so a while later (the operator's timer does not flip it back).
    time.sleep(3)
    assert revoked_status(api) is not None
    assert gateways.told("gw-new") is None


def test_a_revert_to_a_revoked_stable_during_a_canary_is_rejected(
    api: Api, artifacts: Artifacts, fleet: StatusWriter, operator: OperatorProcess
) -> None:
    fleet.create(20)
    fleet.start()
    establish(api, fleet, artifacts, "1.0.0")
    api.apply_release(release_body("detector", "2.0.0", artifacts, steps=LONG_BAKE))
    wait_for(lambda: api.status("detector").get("phase") == "Progressing", 30, what="canary")

    artifacts.deny("1.0.0")
    st = wait_for(
        lambda: (s := api.status("detector")).get("stable", {}).get("revoked") and s,
        20,
        what="stable marked revoked",
    )
    assert st["phase"] in ("Progressing", "Paused")  # the canary of 2.0.0 goes on
    assert condition(st, "Degraded") == ("True", "StableRevoked")
    assert "StableRevoked" in {e["reason"] for e in api.events("detector")}
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
    api: Api, artifacts: Artifacts, fleet: StatusWriter, operator: OperatorProcess, tmp_path: Path
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
