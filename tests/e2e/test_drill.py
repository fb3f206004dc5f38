"""``modelfleet drill all`` end to end, as a user runs it (5 gateways per scenario, 1 s reports,
on the session's API server): every scenario runs on the real operator, fleet API and simulated
agents, and each readiness report says what the scenario expects. The targets are set wide
(10 minutes) so that the verdicts judge behaviour, not this machine's speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from modelfleet.devcluster import ControlPlane
from modelfleet.drill.scenarios import SCENARIOS

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
REPORT_FIELDS = {
    "schema", "scenario", "verdict", "outcome", "badVersion", "timeToDetectSeconds",
    "timeToRollBackSeconds", "timeToRecoverSeconds", "gatewaysExposed", "targets", "checks",
    "timeline", "started", "gateways", "error",
}  # fmt: skip


def checks(report: dict[str, Any]) -> dict[str, bool]:
    return {c["name"]: c["ok"] for c in report["checks"]}


def test_drill_all_writes_a_passing_report_per_scenario(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    out = tmp_path / "reports"
    proc = subprocess.run(
        [
            sys.executable, "-m", "modelfleet", "drill", "all", "--plain",
            "--kubeconfig", str(control_plane.kubeconfig), "--namespace", namespace,
            "--out", str(out), "--workdir", str(tmp_path / "work"),
            "--gateways", "5", "--detect-target", "10m", "--rollback-target", "10m",
        ],
        cwd=ROOT, env=control_plane.env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    log = f"{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"drill failed:\n{log}"
    assert "drill: 8/8 passed" in proc.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "pass"
    assert [s["scenario"] for s in summary["scenarios"]] == list(SCENARIOS)
    assert (out / "summary.md").read_text().startswith("# Drill summary — PASS")

    reports = {}
    for name in SCENARIOS:
        report = json.loads((out / name / "report.json").read_text())
        assert set(report) >= REPORT_FIELDS, name
        assert report["verdict"] == "pass", f"{name}: {report['checks']} {report['error']}"
        assert all(checks(report).values()), name
        assert report["timeToDetectSeconds"] is not None, name
        assert (out / name / "report.md").read_text().startswith(f"# Drill: {name} — PASS")
        with Image.open(out / name / "timeline.png") as png:
            assert png.format == "PNG" and png.size[0] > 0
            png.verify()
        reports[name] = report

    for refused in ("invalid-signature", "tampered-artifact"):
        r = reports[refused]
        assert r["gatewaysExposed"] == 0 and r["timeToRollBackSeconds"] is None
        assert r["outcome"].startswith("Rejected")

    for aborted in ("canary-regression", "missing-stable-artifact", "telemetry-blind-spot"):
        r = reports[aborted]
        assert r["outcome"].startswith("Aborted"), aborted
        assert 0 < r["gatewaysExposed"] <= 2, aborted  # the two canaries at most
        assert r["timeToRollBackSeconds"] is not None, aborted
    assert "ErrorRateExceeded" in reports["canary-regression"]["outcome"]
    assert "never promoted on silence" in checks(reports["telemetry-blind-spot"])

    revoked = reports["revoked-stable"]
    assert revoked["badVersion"] == "1.0.0" and revoked["gatewaysExposed"] == 5
    assert checks(revoked)["no gateway installed 1.0.0 anew"]

    for healthy in ("partial-rollout-offline", "operator-crash"):
        r = reports[healthy]
        assert r["badVersion"] is None and r["gatewaysExposed"] == 0
        assert r["outcome"].startswith("Succeeded")
        assert checks(r)["no cohort skipped"]

    # What the drill created on a cluster it did not start is gone.
    left = control_plane.kubectl("get", "trustpolicies", "-o", "name").stdout
    assert f"drill-{namespace}-" not in left
    objects = control_plane.kubectl("get", "modelreleases,edgegateways", "-n", namespace,
                                    "-o", "name").stdout.split()  # fmt: skip
    assert objects == []
