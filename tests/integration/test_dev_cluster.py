"""`modelfleet dev-cluster up|status|down` runs a real control plane in the background and leaves
nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelfleet.devcluster import find_assets


def modelfleet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelfleet", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )


@pytest.mark.cluster
def test_dev_cluster_up_then_down_leaves_nothing(tmp_path: Path) -> None:
    assets = find_assets()
    env = dict(os.environ)
    env.pop("USE_EXISTING_CLUSTER", None)
    env.update(MODELFLEET_CACHE=str(tmp_path / "cache"), KUBEBUILDER_ASSETS=str(assets.etcd.parent))

    up = modelfleet(env, "dev-cluster", "up", "--quiet")
    assert up.returncode == 0, up.stderr
    kubeconfig = Path(up.stdout.strip())
    assert kubeconfig.is_file()
    try:
        crds = subprocess.run(
            [str(assets.kubectl), f"--kubeconfig={kubeconfig}", "get", "crd", "-o", "name"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.split()  # fmt: skip
        assert sorted(crds) == [
            "customresourcedefinition.apiextensions.k8s.io/edgegateways.modelfleet.dev",
            "customresourcedefinition.apiextensions.k8s.io/modelreleases.modelfleet.dev",
            "customresourcedefinition.apiextensions.k8s.io/trustpolicies.modelfleet.dev",
        ]
        again = modelfleet(env, "dev-cluster", "up", "--quiet")
        assert again.stdout.strip() == str(kubeconfig), "a second `up` reuses the running cluster"
        status = modelfleet(env, "dev-cluster", "status")
        assert status.returncode == 0 and "running at https://127.0.0.1:" in status.stdout
        pids = [int(p) for p in (tmp_path / "cache" / "dev-cluster" / "state.json").read_text()
                .split('"pids": [')[1].split("]")[0].split(",")]  # fmt: skip
    finally:
        down = modelfleet(env, "dev-cluster", "down")
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert not any(alive(p) for p in pids)
    assert not (tmp_path / "cache" / "dev-cluster").exists()
    status = modelfleet(env, "dev-cluster", "status")
    assert status.returncode == 1 and "no dev cluster is running" in status.stdout


@pytest.mark.cluster
def test_state_dirs_are_separate_clusters_sharing_the_binaries(tmp_path: Path) -> None:
    """`--state-dir` isolates a cluster without moving the binary cache (no rebuild), and `down`
    stops the API server before etcd even with a watch open (issue 11: it once waited 20 s)."""
    assets = find_assets()  # as the environment finds them; the state dirs do not change that
    env = dict(os.environ)
    env.pop("USE_EXISTING_CLUSTER", None)
    one, two = tmp_path / "one", tmp_path / "two"
    first = modelfleet(env, "dev-cluster", "up", "--quiet", "--state-dir", str(one))
    assert first.returncode == 0, first.stderr
    second = modelfleet(env, "dev-cluster", "up", "--quiet", "--state-dir", str(two))
    assert second.returncode == 0, second.stderr
    watch = None
    try:
        assert "building" not in first.stderr + second.stderr
        kubeconfigs = [Path(first.stdout.strip()), Path(second.stdout.strip())]
        assert kubeconfigs == [one / "kubeconfig", two / "kubeconfig"]
        servers = [
            modelfleet(env, "dev-cluster", "status", "--state-dir", str(d)).stdout
            for d in (one, two)
        ]
        assert all("running at https://127.0.0.1:" in s for s in servers)
        assert servers[0].split()[4] != servers[1].split()[4], "two API servers, two ports"
        watch = subprocess.Popen(
            [str(assets.kubectl), f"--kubeconfig={kubeconfigs[0]}", "get", "mr", "-A", "--watch"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        pids = json.loads((one / "state.json").read_text())["pids"]
        down = modelfleet(env, "dev-cluster", "down", "--state-dir", str(one))
        assert down.returncode == 0 and "stopped" in down.stdout, down.stderr
        assert not any(alive(p) for p in pids)
        assert not one.exists()
        still = modelfleet(env, "dev-cluster", "status", "--state-dir", str(two))
        assert still.returncode == 0, "the other cluster keeps running"
    finally:
        if watch is not None:
            watch.kill()
            watch.wait()
        modelfleet(env, "dev-cluster", "down", "--state-dir", str(one))
        modelfleet(env, "dev-cluster", "down", "--state-dir", str(two))
    assert not two.exists()
