"""``modelfleet drill --deployed`` against what ``hack/deploy-local.sh`` deploys: the operator and
the fleet API run from the image as podman containers with TokenRequest tokens (no kubeconfig),
as in test_deploy_local.py, on a control plane of their own (the deployed operator watches every
namespace). The drill starts neither: its preflight checks them, its simulated gateways (the real
agent code) enroll against the deployed fleet API, the deployed operator fetches the drill's
artifacts from the HTTP server the drill starts, and operator-crash SIGKILLs the operator's
container and starts it again by --operator-restart-command (this control plane has no kubelet
to recreate deleted Pods: test_drill_preflight.py shows the Pod deletion on the API server), then
waits for the Lease to be held again.

Before the run, the preflight and the scenario refusal each fail in one actionable line.
"""

from __future__ import annotations

import json
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from modelfleet.devcluster import ControlPlane, free_port
from modelfleet.devcluster.assets import find_assets, use_existing_cluster
from modelfleet.kube import api_client, load_access

from . import test_deploy_local as local

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(3600)]

ROOT = local.ROOT
SCENARIOS = ("invalid-signature", "canary-regression", "operator-crash")
image = local.image  # the same fixture: built (or reused) by hack/image.sh


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane of its own (or the current kubeconfig's with USE_EXISTING_CLUSTER)."""
    if use_existing_cluster():
        cp = ControlPlane.from_environment()
    else:
        cp = ControlPlane(assets=find_assets(), workdir=tmp_path_factory.mktemp("cp"))
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


def start_drill(cp: ControlPlane, namespace: str, tmp: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "modelfleet", "drill", *args, "--plain", "--deployed",
         "--kubeconfig", str(cp.kubeconfig), "--namespace", namespace,
         "--workdir", str(tmp / "work"), "--out", str(tmp / "reports"),
         "--gateways", "4", "--detect-target", "10m", "--rollback-target", "10m"],
        cwd=ROOT, env=cp.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def drill(
    cp: ControlPlane, namespace: str, tmp: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    proc = start_drill(cp, namespace, tmp, *args)
    stdout, stderr = proc.communicate(timeout=900)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def borrow_the_drill_policy(cp: ControlPlane, namespace: str, victim: str) -> dict[str, Any]:
    """The attack on a drill in progress: its served artifact (signed with the drill's key)
    released in another namespace naming the drill's TrustPolicy. The release's status once
    the operator decided."""
    custom: Any = client.CustomObjectsApi(api_client(load_access(cp.kubeconfig)))
    group, version = "modelfleet.dev", "v1alpha1"

    def get(ns: str, name: str) -> dict[str, Any] | None:
        try:
            got: dict[str, Any] = custom.get_namespaced_custom_object(
                group, version, ns, "modelreleases", name
            )
        except client.exceptions.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return got

    deadline = time.monotonic() + 300
    drilled = None
    while drilled is None and time.monotonic() < deadline:
        drilled = get(namespace, "canary-regression")
        time.sleep(0.5)
    assert drilled is not None, "the drill never released canary-regression"
    spec = drilled["spec"]
    custom.create_namespaced_custom_object(group, version, victim, "modelreleases", {
        "apiVersion": f"{group}/{version}", "kind": "ModelRelease",
        "metadata": {"name": "detector"},
        "spec": {"model": "detector", "version": spec["version"], "artifact": spec["artifact"],
                 "trustPolicy": spec["trustPolicy"],
                 "rollout": {"steps": [{"name": "all", "percent": 100}]}},
    })  # fmt: skip
    while time.monotonic() < deadline:
        status = (get(victim, "detector") or {}).get("status") or {}
        if status.get("phase") not in (None, "", "Pending", "Verifying"):
            return dict(status)
        time.sleep(0.5)
    raise AssertionError("the operator never decided the borrowed release")


def crash_and_recreate(name: str) -> str:
    """The restart command: SIGKILL the container (the Lease is not released), remove it and run
    it anew from the command that created it, as a Deployment replaces a crashed Pod (a fresh
    emptyDir: podman 4.3 restarting a container loses its tmpfs mode)."""
    podman = ["bash", str(ROOT / "hack" / "podman.sh")]
    inspected = subprocess.run([*podman, "inspect", "--format", "{{json .Config.CreateCommand}}",
                                name], capture_output=True, text=True, check=True)  # fmt: skip
    created = json.loads(inspected.stdout)
    run = created[created.index("run") :]
    return " && ".join(
        shlex.join(argv)
        for argv in ([*podman, "kill", name], [*podman, "rm", "--force", name], [*podman, *run])
    )


def container_logs(state: dict[str, Any]) -> str:
    """The end of each deployed container's log (for a failure message)."""
    out = []
    for name in state["containers"]:
        done = subprocess.run(["bash", str(ROOT / "hack" / "podman.sh"), "logs", "--tail", "40",
                               name], capture_output=True, text=True, check=False)  # fmt: skip
        out.append(f"--- {name}\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
    return "\n".join(out)


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def test_drill_runs_against_the_deployed_operator_and_fleet_api(
    cluster: ControlPlane, image: str, tmp_path: Path
) -> None:
    cp = cluster
    namespace = f"drill-{secrets.token_hex(3)}"
    victim = f"prod-{secrets.token_hex(3)}"
    artifacts = free_port()
    workdir = tmp_path / "deploy"
    try:
        out = local.deploy(
            "up", cp, workdir, image,
            "--operator-arg=--interval=1", "--operator-arg=--report-interval=1",
            f"--operator-arg=--allow-host=127.0.0.1:{artifacts}",
            "--operator-arg=--allow-scheme=http",
            *(f"--fleet-api-arg={a}" for a in local.FLEET_API_ARGS),
        )  # fmt: skip
        state = json.loads(out)
        fleet_url = state["fleet_url"]
        operator = next(c for c in state["containers"] if c.startswith("modelfleet-operator-"))
        restart = crash_and_recreate(operator)

        # Preflight: a fleet API URL nobody answers on, in one line; nothing is left behind.
        closed = f"https://127.0.0.1:{free_port()}"
        bad = drill(cp, namespace, tmp_path / "bad", "canary-regression", "--fleet-api", closed)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        lines = [ln for ln in bad.stderr.splitlines() if ln.startswith("modelfleet drill:")]
        assert len(lines) == 1, bad.stderr
        assert lines[0].startswith(
            f"modelfleet drill: preflight: the fleet API at {closed} does not answer"
        )
        assert lines[0].endswith("check --fleet-api")

        # operator-crash with no operator Pods and no restart command: refused, naming why.
        refused = drill(cp, namespace, tmp_path / "refused", "operator-crash",
                        "--fleet-api", fleet_url)  # fmt: skip
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert (
            "modelfleet drill: preflight: operator-crash cannot run: no Pods match "
            "app.kubernetes.io/name=modelfleet-operator in modelfleet-system" in refused.stderr
        ), refused.stderr
        assert "--operator-restart-command" in refused.stderr

        proc = start_drill(
            cp, namespace, tmp_path, *SCENARIOS, "--fleet-api", fleet_url,
            "--serve-artifacts", f"127.0.0.1:{artifacts}", "--operator-restart-command", restart,
            "--report-interval", "1",
        )  # fmt: skip
        # The attack, while the drill runs: the drill's TrustPolicy trusts its key in the drill
        # namespace only, so its artifacts cannot be released elsewhere under it.
        cp.create_namespace(victim)
        try:
            borrowed = borrow_the_drill_policy(cp, namespace, victim)
        finally:
            stdout, stderr = proc.communicate(timeout=900)
        run = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        assert borrowed["phase"] == "Rejected", borrowed
        assert f"does not apply to namespace '{victim}'" in borrowed["message"], borrowed
        log = f"{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
        assert run.returncode == 0, f"drill failed:\n{log}\n{container_logs(state)}"
        assert "drill: 3/3 passed" in run.stdout, log
        assert f"fleet API {fleet_url}, the deployed operator" in run.stdout

        out = tmp_path / "reports"
        reports = {n: json.loads((out / n / "report.json").read_text()) for n in SCENARIOS}
        for name, report in reports.items():
            assert report["verdict"] == "pass", f"{name}: {report['checks']} {report['error']}"
            assert report["namespace"] == namespace
        invalid = reports["invalid-signature"]
        assert invalid["outcome"].startswith("Rejected") and invalid["gatewaysExposed"] == 0
        regression = reports["canary-regression"]
        assert "ErrorRateExceeded" in regression["outcome"]
        assert 0 < regression["gatewaysExposed"] <= 2
        crash = reports["operator-crash"]
        assert crash["outcome"].startswith("Succeeded")
        restarted = checks(crash)["the operator was killed and restarted"]
        assert restarted["ok"]
        assert "--operator-restart-command" in restarted["detail"]
        assert "Lease held again, by operator-local-0_" in restarted["detail"]
        assert checks(crash)["no cohort skipped"]["ok"]

        # What the drill made is gone; the deployed operator still holds its Lease.
        left = cp.kubectl("get", "trustpolicies", "-o", "name").stdout
        assert f"drill-{namespace}-" not in left
        objects = cp.kubectl("get", "modelreleases,edgegateways", "-n", namespace,
                             "-o", "name", check=False).stdout.split()  # fmt: skip
        assert objects == []
        holder = cp.kubectl("get", "lease", "modelfleet-operator", "-n", local.SYSTEM,
                            "-o", "jsonpath={.spec.holderIdentity}").stdout  # fmt: skip
        assert holder.startswith("operator-local-0_")
    finally:
        local.deploy("down", cp, workdir, image)
        if cp.existing:
            for ns in (namespace, victim):
                cp.kubectl("delete", "namespace", ns, "--wait=false", check=False)
