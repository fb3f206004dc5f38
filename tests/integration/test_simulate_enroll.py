"""``modelfleet simulate --gateways N`` enrolls N gateways for real (EdgeGateways + client
certificates from the fleet CA) and writes their bundles: the enrollment lives with the command,
since the agent package (the ``agent`` extra) has no Kubernetes client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from modelfleet.devcluster import ControlPlane

ROOT = Path(__file__).resolve().parents[2]


def _modelfleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelfleet", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_simulate_enrolls_gateways_for_real(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    kubeconfig = str(control_plane.kubeconfig)
    done = _modelfleet("fleet-ca", "init", "--namespace", namespace, "--kubeconfig", kubeconfig)
    assert done.returncode == 0, done.stderr
    done = _modelfleet(
        "simulate", "--gateways", "4", "--namespace", namespace, "--kubeconfig", kubeconfig,
        "--trust-policy", str(ROOT / "examples" / "trustpolicy-key.yaml"),
        "--workdir", str(tmp_path), "--label-split", "ring=early:1", "--labels", "tier=retail",
        "--fleet-url", "https://127.0.0.1:9", "--duration", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"enrolled 4 gateways in {namespace}" in done.stdout
    listed = json.loads(control_plane.kubectl("get", "egw", "-n", namespace, "-o", "json").stdout)
    gateways = {item["metadata"]["name"]: item for item in listed["items"]}
    assert sorted(gateways) == ["sim-0000", "sim-0001", "sim-0002", "sim-0003"]
    for name, gateway in gateways.items():
        assert gateway["metadata"]["labels"] == {"tier": "retail", "ring": "early"}
        assert gateway["spec"]["certificateFingerprint"]
        assert (tmp_path / name / "agent.yaml").is_file()
