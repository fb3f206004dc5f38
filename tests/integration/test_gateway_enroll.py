"""``modelfleet gateway enroll`` for many gateways in one run, against the real API server: one
CA load and one API client for all, progress on stderr, every name checked before anything is
created."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography import x509

from modelfleet.agent.config import load_agent_config
from modelfleet.devcluster import ControlPlane
from modelfleet.enrollment.pki import fingerprint

ROOT = Path(__file__).resolve().parents[2]


def _modelfleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelfleet", *args],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


def _gateways(cp: ControlPlane, namespace: str) -> dict[str, Any]:
    listed = json.loads(cp.kubectl("get", "egw", "-n", namespace, "-o", "json").stdout)
    return {item["metadata"]["name"]: item for item in listed["items"]}


def test_enroll_many_gateways_in_one_run(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    kube = ("--namespace", namespace, "--kubeconfig", str(control_plane.kubeconfig))
    done = _modelfleet("fleet-ca", "init", *kube)
    assert done.returncode == 0, done.stderr
    done = _modelfleet(
        "gateway", "enroll", "--count", "12", "--name-prefix", "store", "--labels", "tier=retail",
        "--trust-policy", str(ROOT / "examples" / "trustpolicy-key.yaml"),
        "--fleet-url", "https://fleet.example.com:8443", "--out", str(tmp_path), *kube,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"enrolled 12 EdgeGateways in {namespace} (store-0000 .. store-0011)" in done.stdout
    assert "enrolled 12/12" in done.stderr  # progress, on stderr
    gateways = _gateways(control_plane, namespace)
    assert sorted(gateways) == [f"store-{i:04d}" for i in range(12)]
    for name, gateway in gateways.items():
        config = load_agent_config(tmp_path / name / "agent.yaml")
        assert config.gateway == name and config.fleet_url == "https://fleet.example.com:8443"
        assert gateway["metadata"]["labels"] == {"tier": "retail"}
        # the identity recorded is the certificate written into that gateway's own bundle
        cert = x509.load_pem_x509_certificate(config.tls.cert.read_bytes())
        assert gateway["spec"]["certificateFingerprint"] == fingerprint(cert)
        assert config.trust_policy.is_file()
    fingerprints = {g["spec"]["certificateFingerprint"] for g in gateways.values()}
    assert len(fingerprints) == 12


def test_several_names_are_enrolled_and_a_bad_one_stops_all_before_anything_is_created(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    kube = ("--namespace", namespace, "--kubeconfig", str(control_plane.kubeconfig))
    assert _modelfleet("fleet-ca", "init", *kube).returncode == 0
    done = _modelfleet("gateway", "enroll", "gw-a", "Bad_Name", "--out", str(tmp_path), *kube)
    assert done.returncode == 1
    assert "Bad_Name" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert _gateways(control_plane, namespace) == {}
    done = _modelfleet("gateway", "enroll", "gw-a", "gw-b", "--out", str(tmp_path), *kube)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(_gateways(control_plane, namespace)) == ["gw-a", "gw-b"]
    assert (tmp_path / "gw-a" / "client.key").is_file()
    assert (tmp_path / "gw-b" / "client.key").is_file()
    # enrolling one of them again without --renew is refused and names the way out
    done = _modelfleet("gateway", "enroll", "gw-b", "--out", str(tmp_path / "again"), *kube)
    assert done.returncode == 1 and "--renew" in done.stderr
