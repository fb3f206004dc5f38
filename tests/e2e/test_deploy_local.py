"""The deployed form, tested: ``hack/deploy-local.sh`` (what ``make deploy-local`` runs) applies
``manifests/`` with kustomize to a control plane that writes an audit log, then runs the operator
and the fleet API from the image as containers with their ServiceAccount tokens mounted where a
pod has them (no kubeconfig inside), under the Deployments' securityContext. Real simulated
gateways (``modelfleet simulate``, from the checkout) then go through a rollout, a regression
aborted at the canary, and the revert, with artifacts served over HTTP on loopback (the drill's
artifact server).

Afterwards the audit log says what each ServiceAccount really did: every request was allowed
(nothing the processes need is missing from the RBAC as shipped), and every rule granted was
used (:mod:`tests.integration.test_rbac_used` holds the granted table and the few grants this
run cannot exercise, each with the reason).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelfleet.demo.models import ModelShelf
from modelfleet.demo.stack import SimulatorSettings, Stack
from modelfleet.demo.watch import FleetView, Observer
from modelfleet.devcluster import ControlPlane
from modelfleet.devcluster.assets import find_assets, use_existing_cluster
from modelfleet.drill.deployed import ArtifactServer
from tests.integration.test_rbac_used import (
    ACCOUNTS,
    SYSTEM,
    audit_usage,
    granted,
    unexercised,
)

from .loop import MODEL, SHORT_ROLLOUT, apply_release, gateway_models, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
GATEWAYS = 20
TRUST_SECRET = "modelfleet-trust-material"
FLEET_API_ARGS = (
    "--poll-interval", "2", "--active-poll-interval", "1", "--jitter", "0.2",
    "--health-interval", "1", "--idle-health-interval", "5",
    "--active-heartbeat-interval", "5", "--rate-limit", "20", "--rate-burst", "50",
)  # fmt: skip


@pytest.fixture(scope="module")
def image() -> str:
    """The operator + fleet API image, built (or reused) by ``hack/image.sh``."""
    env = dict(os.environ)
    env.setdefault("IMAGE", "localhost/modelfleet:dev")
    done = subprocess.run(["bash", str(ROOT / "hack" / "image.sh")], env=env, text=True,
                          capture_output=True, check=False, timeout=3300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-5000:]
    return done.stdout.split()[0]


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane of its own that writes an audit log of every request; with
    ``USE_EXISTING_CLUSTER=true`` the current kubeconfig's cluster (e.g. ``modelfleet dev-cluster
    up``'s), whose requests are not audited here."""
    if use_existing_cluster():
        cp = ControlPlane.from_environment()
    else:
        cp = ControlPlane(assets=find_assets(), audit=True, workdir=tmp_path_factory.mktemp("cp"))
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


def deploy(action: str, cp: ControlPlane, workdir: Path, image: str, *extra: str) -> str:
    done = subprocess.run(
        ["bash", str(ROOT / "hack" / "deploy-local.sh"), action, "--workdir", str(workdir),
         "--kubeconfig", str(cp.kubeconfig), "--kubectl", cp.kubectl_path, "--image", image,
         *extra],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, (done.stderr + done.stdout)[-5000:]
    return done.stdout


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def release(shelf: ModelShelf, served: ArtifactServer, version: str) -> dict[str, Any]:
    built = shelf.build(version)
    artifact = {
        "uri": served.url(built.artifact),
        "digest": built.digest,
        "signature": {"uri": served.url(built.signature)},
    }
    return {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "ModelRelease",
        "metadata": {"name": MODEL},
        "spec": {"model": MODEL, "version": version, "artifact": artifact,
                 "trustPolicy": shelf.policy_name, "rollout": SHORT_ROLLOUT},
    }  # fmt: skip


def settled(version: str) -> Any:
    def check(v: FleetView) -> bool:
        r = v.release
        return (r.spec_version == version and r.observed and r.phase == "Succeeded"
                and r.stable == version and v.all_on(version))  # fmt: skip

    return check


def test_deployed_containers_roll_out_abort_and_revert_with_the_shipped_rbac(
    audited: ControlPlane, image: str, tmp_path: Path
) -> None:
    cp = audited
    namespace = f"deploy-local-{secrets.token_hex(3)}"
    cp.create_namespace(namespace)
    shelf = ModelShelf(tmp_path / "models", model=MODEL, policy_name=f"signers-{namespace}")
    for version in ("1.0.0", "2.0.0"):
        shelf.build(version)
    served = ArtifactServer(shelf.root)
    workdir = tmp_path / "deploy"
    stack = Stack(tmp_path / "stack", namespace, kubeconfig=cp.kubeconfig)
    try:
        out = deploy(
            "up", cp, workdir, image,
            "--operator-arg=--interval=1",
            f"--operator-arg=--allow-host={served.authority}", "--operator-arg=--allow-scheme=http",
            *(f"--fleet-api-arg={a}" for a in FLEET_API_ARGS),
        )  # fmt: skip
        state = json.loads(out)
        # Both up and ready as the kubelet would see them; no kubeconfig in either container.
        for role in ("operator", "fleet-api"):
            assert status(state["readyz"][role]) == 200
            assert status(state["healthz"][role]) == 200
            assert not any("kubeconfig" in a for a in state[f"argv_{role}"])
        # The operator reads its trust material from the one Secret its Role names.
        public_key = shelf.public_key_pem
        secret = cp.kubectl("create", "secret", "generic", TRUST_SECRET, "-n", SYSTEM,
                            f"--from-literal=release-key.pub={public_key}",
                            "--dry-run=client", "-o", "json").stdout  # fmt: skip
        cp.kubectl("apply", "-f", "-", input=secret)
        policy = shelf.policy_manifest()
        policy["spec"]["authorities"][0]["key"] = {
            "secretRef": {"name": TRUST_SECRET, "key": "release-key.pub"}
        }
        cp.kubectl("apply", "-f", "-", input=json.dumps(policy))

        stack.fleet_url = state["fleet_url"]
        behaviour = {"2.0.0": {"errorRate": 0.4}}
        stack.start_simulator(
            SimulatorSettings(gateways=GATEWAYS, behaviour=behaviour,
                              extra=("--ca-namespace", SYSTEM)),
            trust_policy=shelf.write_policy(tmp_path / "trust-policy.yaml"),
        )  # fmt: skip
        observer = Observer(stack.api, namespace, MODEL)

        # 1. rollout
        apply_release(stack, release(shelf, served, "1.0.0"))
        wait_for(observer, stack, settled("1.0.0"), timeout=180, what="1.0.0 on every gateway")
        # 2. a regression, aborted at the canary
        apply_release(stack, release(shelf, served, "2.0.0"))
        view = wait_for(
            observer, stack,
            lambda v: v.release.spec_version == "2.0.0" and v.release.phase == "Aborted"
            and v.all_on("1.0.0"),
            timeout=120, what="2.0.0 aborted and every gateway on 1.0.0",
        )  # fmt: skip
        assert view.release.gate_reason == "ErrorRateExceeded"
        # 3. the revert (what a revert commit applies): the spec back on 1.0.0, settled
        apply_release(stack, release(shelf, served, "1.0.0"))
        view = wait_for(observer, stack, settled("1.0.0"), timeout=120, what="the revert")
        outcomes = [(h.get("version"), h.get("outcome")) for h in view.release.history]
        assert outcomes == [("1.0.0", "Succeeded"), ("2.0.0", "Aborted")]
        digest = shelf.build("1.0.0").digest
        reports = gateway_models(stack)
        assert len(reports) == GATEWAYS
        assert {(m["version"], m["digest"], m["state"]) for m in reports.values()} == {
            ("1.0.0", digest, "Active")
        }
    finally:
        stack.stop()
        deploy("down", cp, workdir, image)
        served.close()
        if cp.existing:
            cp.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
            cp.kubectl("delete", "trustpolicy", shelf.policy_name, "--ignore-not-found",
                       check=False)  # fmt: skip

    if not cp.audit:
        return  # an existing cluster: its audit log is not ours to read
    # What each ServiceAccount did, from the API server's audit log of this run.
    usage = audit_usage(cp.audit_log)
    for account in ACCOUNTS:
        denied = sorted(usage.denied.get(account, ()))
        assert not denied, f"{account}: requests the shipped RBAC refused: {denied}"
        used = usage.allowed.get(account, set())
        assert used, f"{account}: no request of it in the audit log"
        unused = [g for g in granted(account) if not g.used_by(used) and g not in unexercised()]
        assert not unused, f"{account}: granted but never used: {unused}"
