"""``modelfleet demo`` end to end, as a user runs it (here with 20 gateways and 2 s bakes, on the
session's API server): every act reaches its outcome, the summary says so, and everything the
demo started or created is gone afterwards."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from modelfleet.devcluster import ControlPlane

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


def test_demo_tells_the_whole_story_and_cleans_up(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    workdir = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable, "-m", "modelfleet", "demo", "--gateways", "20", "--bake", "2s",
            "--plain", "--kubeconfig", str(control_plane.kubeconfig),
            "--namespace", namespace, "--workdir", str(workdir),
        ],
        cwd=ROOT, env=control_plane.env, capture_output=True, text=True, timeout=480, check=False,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, f"demo failed:\n{out[-4000:]}\n{proc.stderr[-4000:]}"

    summary = out.split("\nSummary\n", 1)[1]
    rows = {re.split(r"\s{2,}", line.strip())[0]: line for line in summary.splitlines()[1:6]}
    assert list(rows) == [
        "1 release 1.0.0",
        "2 release 2.0.0 (regression)",
        "rollback 2.0.0 -> 1.0.0",
        "3 release 3.0.0",
        "4 rollback 3.0.0 -> 1.0.0",
    ]
    assert "Succeeded: 20/20 gateways on 1.0.0" in rows["1 release 1.0.0"]
    assert "Aborted (ErrorRateExceeded" in rows["2 release 2.0.0 (regression)"]
    assert "20/20 back on 1.0.0" in rows["2 release 2.0.0 (regression)"]
    assert "Git matches the fleet: 20/20 on 1.0.0" in rows["rollback 2.0.0 -> 1.0.0"]
    assert "Succeeded: 20/20 gateways on 3.0.0" in rows["3 release 3.0.0"]
    assert "in one step (ImmediateRollback): 20/20 on 1.0.0" in rows["4 rollback 3.0.0 -> 1.0.0"]
    for row in rows.values():
        assert re.search(r"\s[0-9a-f]{12}\s", row), f"no commit in {row!r}"
        assert re.search(r"\d+\.\ds$", row), f"no time to converge in {row!r}"
    # The Git view agrees: two reverts on top, one per rollback.
    history = out.split("`modelfleet history`):", 1)[1]
    subjects = [line for line in history.splitlines() if "release" in line]
    assert 'Revert "release' in subjects[0] and 'Revert "release' in subjects[2]
    assert "stopped everything the demo started" in out

    # Nothing left running, nothing left in the cluster.
    assert not (workdir / "stack" / "stack.json").exists()
    assert processes_mentioning(str(workdir)) == []
    leftovers = control_plane.kubectl(
        "get", "modelreleases,edgegateways", "-n", namespace, "-o", "name"
    ).stdout.split()
    assert leftovers == []
    policy = control_plane.kubectl("get", "trustpolicy", f"{namespace}-signers", check=False)
    assert policy.returncode != 0
