"""``modelfleet status`` and ``kubectl modelfleet status`` against the real operator.

The operator (a real process, ``--log-format json``) rolls a signed release out to EdgeGateways
played by the fleet driver; ``modelfleet status`` runs as a subprocess with the user's kubeconfig:
text and ``-o json``, ``--watch`` seeing a phase change, the kubectl plugin found by the real
kubectl on PATH, and one-line errors (not found, no cluster, forbidden). The operator's JSON log
lines carry the release, version and commit.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.devcluster import ControlPlane, free_port

from .artifacts import Artifacts, release_body
from .cluster import ROOT, Api, stable_is, status_where
from .fleet import SimulatedFleet
from .operatorproc import OperatorProcess, artifact_sources

pytestmark = pytest.mark.cluster


COMMIT = "3f2a9c1e5b7d4a6f8e0c2b4d6f8a0c2e4b6d8f0a"
REPO = "https://git.example.com/fleet/releases.git"
STEPS = [
    {"name": "canary", "percent": 20, "bake": "1s"},
    {"name": "fleet", "percent": 100, "bake": "1s"},
]


def _env(cp: ControlPlane) -> dict[str, str]:
    env = dict(cp.env)
    env["PYTHONPATH"] = str(ROOT / "operator")
    bin_dir = str(Path(sys.executable).parent)  # the venv's bin: modelfleet, kubectl-modelfleet
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def status_cli(
    cp: ControlPlane, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelfleet", "status", *args],
        capture_output=True, text=True, env=env or _env(cp), cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip


def git_release(repo: Path, namespace: str, body: dict[str, Any]) -> str:
    """Commit ``body`` as releases/NAMESPACE/detector.yaml of a new repository; the commit."""
    repo.mkdir()
    body = json.loads(json.dumps(body))
    body["metadata"]["namespace"] = namespace
    path = repo / "releases" / namespace / "detector.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(body))
    ident = ["-c", "user.name=Release Bot", "-c", "user.email=bot@example.com",
             "-c", "commit.gpgsign=false"]  # fmt: skip
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "."],
        ["commit", "-q", "-m", "detector 1.0.0"],
    ):
        subprocess.run(["git", *ident, *args], cwd=repo, check=True, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


def history_cli(cp: ControlPlane, repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelfleet", "history", "detector", "--repo", str(repo), *args],
        capture_output=True, text=True, env=_env(cp), cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip


def sourced(body: dict[str, Any], commit: str = COMMIT) -> dict[str, Any]:
    body["metadata"]["annotations"] = {
        "modelfleet.dev/git-repo": REPO,
        "modelfleet.dev/git-revision": commit,
        "modelfleet.dev/git-path": "releases/detector.yaml",
    }
    return body


@pytest.fixture
def json_operator(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Any:
    proc = OperatorProcess(
        control_plane, namespace, tmp_path,
        extra=(*artifact_sources(tmp_path), "--log-format", "json"),
    )  # fmt: skip
    proc.start()
    yield proc
    proc.stop()


def _rolled_out(api: Api, artifacts: Artifacts, version: str, commit: str = COMMIT) -> None:
    api.apply_release(sourced(release_body("detector", version, artifacts, steps=STEPS), commit))
    status_where(api, f"{version} to become stable", stable_is(version), 90)


def test_status_shows_a_real_rollout_in_text_json_and_through_kubectl(
    *,
    control_plane: ControlPlane,
    namespace: str,
    api: Api,
    json_operator: OperatorProcess,
    artifacts: Artifacts,
    fleet: SimulatedFleet,
    tmp_path: Path,
) -> None:
    fleet.create(10)
    fleet.start()
    repo = tmp_path / "gitops"
    commit = git_release(repo, namespace, release_body("detector", "1.0.0", artifacts, steps=STEPS))
    _rolled_out(api, artifacts, "1.0.0", commit)

    # -o json: the documented shape, from the live object and its Events
    out = status_cli(control_plane, "detector", "-n", namespace, "-o", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["schema"] == "modelfleet.dev/status/v1"
    assert (doc["namespace"], doc["name"], doc["phase"]) == (namespace, "detector", "Succeeded")
    assert doc["stable"]["version"] == "1.0.0"
    assert doc["stable"]["digest"] == artifacts.sign("1.0.0").digest
    assert doc["stable"]["verification"]["verified"] is True
    assert doc["stable"]["verification"]["modelDigest"]
    assert doc["source"] == {"repoURL": REPO, "revision": commit, "path": "releases/detector.yaml"}
    assert [c["name"] for c in doc["cohorts"]] == ["canary", "fleet"]
    fleet_cohort = doc["cohorts"][-1]
    # the counts the operator last wrote (a Succeeded release is not refreshed)
    assert doc["cohorts"] == api.status("detector")["rollout"]["cohorts"]
    assigned, active = fleet_cohort["assigned"], fleet_cohort["active"]
    assert 0 < active <= assigned <= 10
    checks = {c["name"]: c for c in doc["gates"]["checks"]}
    assert checks["errorRate"]["threshold"] == 0.05 and checks["errorRate"]["ok"] is True
    assert checks["requests"]["kind"] == "min"
    assert doc["events"] and all(e["reason"] for e in doc["events"])

    # text: what a person reads
    out = status_cli(control_plane, "detector", "-n", namespace)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Phase   Succeeded" in text
    assert "Stable  1.0.0" in text and "verified by" in text
    assert f"@ {commit}" in text
    assert re.search(rf"fleet\s+\[.+\]\s+{active}/{assigned}\s+active", text), text
    assert "errorRate" in text and "<= 0.05" in text
    assert doc["events"][-1]["reason"] in text
    (tmp_path / "status.txt").write_text(text)  # the screenshot-ready view

    # no NAME: a table of the namespace's releases
    out = status_cli(control_plane, "-n", namespace)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split()[:3] == ["NAME", "MODEL", "PHASE"]
    assert out.stdout.splitlines()[1].split()[:3] == ["detector", "detector", "Succeeded"]

    # kubectl finds the plugin on PATH and passes the words through
    out = subprocess.run(
        [control_plane.kubectl_path, "modelfleet", "status", "detector", "-n", namespace,
         "-o", "json"],
        capture_output=True, text=True, env=_env(control_plane), timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["stable"]["version"] == "1.0.0"

    # the operator's JSON log lines carry the release, its version and its commit
    lines = [json.loads(line) for line in json_operator.logs().splitlines()
             if line.startswith("{")]  # fmt: skip
    assert lines and all({"time", "level", "logger", "message"} <= set(d) for d in lines)
    ours = [d for d in lines if d.get("release") == "detector"]
    assert any(d.get("version") == "1.0.0" and d.get("commit") == commit for d in ours), ours
    assert all(d.get("namespace") == namespace for d in ours)
    assert all(d.get("component") == "operator" for d in lines)

    # history: the Git log beside what the cluster did with each version
    out = history_cli(control_plane, repo, "--cluster", "--json")
    assert out.returncode == 0, out.stderr
    hist = json.loads(out.stdout)
    assert hist["cluster"]["read"] is True and hist["cluster"]["phase"] == "Succeeded"
    (v1,) = hist["versions"]
    assert (v1["commit"], v1["version"]) == (commit, "1.0.0")
    rollout = v1["rollout"]
    assert (rollout["outcome"], rollout["live"]) == ("Succeeded", "stable")
    assert rollout["modelDigest"] == doc["stable"]["verification"]["modelDigest"]
    assert rollout["startedAt"]
    out = history_cli(control_plane, repo, "--cluster")
    row = out.stdout.splitlines()[1]
    assert row.startswith(commit[:12]) and "Succeeded" in row and "[stable]" in row, out.stdout
    out = history_cli(control_plane, repo)  # Git alone, and it says so
    assert out.returncode == 0 and "1.0.0" in out.stdout
    assert "Git only" in out.stderr


def test_watch_redraws_when_the_phase_changes(
    *,
    control_plane: ControlPlane,
    namespace: str,
    api: Api,
    json_operator: OperatorProcess,
    artifacts: Artifacts,
    fleet: SimulatedFleet,
) -> None:
    fleet.create(5)
    fleet.start()
    _rolled_out(api, artifacts, "1.0.0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelfleet", "status", "detector", "-n", namespace,
         "--watch", "--timeout", "120", "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(control_plane),
        cwd=ROOT,
    )  # fmt: skip
    phases: list[str] = []
    seen_first = threading.Event()
    changed = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            phases.append(json.loads(line)["phase"])
            seen_first.set()
            if phases[-1] != phases[0]:
                changed.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert seen_first.wait(60), proc.stderr.read() if proc.poll() is not None else "no frame"
        api.apply_release(sourced(release_body("detector", "2.0.0", artifacts, steps=STEPS)))
        assert changed.wait(90), phases
    finally:
        proc.terminate()
        proc.wait(10)
    assert phases[0] == "Succeeded" and phases[-1] != "Succeeded"


def test_errors_are_one_line(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> None:
    out = status_cli(control_plane, "nope", "-n", namespace)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"modelfleet status: ModelRelease {namespace}/nope not found "
        f"(modelfleet status -n {namespace} lists them)"
    ]

    # no cluster: a kubeconfig naming a port nothing listens on
    admin = yaml.safe_load(control_plane.kubeconfig.read_text())
    admin["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump(admin))
    out = status_cli(control_plane, "detector", "-n", namespace, "--kubeconfig", str(dead))
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "cannot reach the API server" in out.stderr and "Traceback" not in out.stderr

    # no permission: a ServiceAccount token without any role
    control_plane.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = control_plane.kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()
    cfg = yaml.safe_load(control_plane.kubeconfig.read_text())
    cluster = cfg["clusters"][0]
    restricted = {
        "apiVersion": "v1", "kind": "Config", "clusters": [cluster],
        "users": [{"name": "nobody", "user": {"token": token}}],
        "contexts": [{"name": "nobody", "context": {"cluster": cluster["name"], "user": "nobody",
                                                    "namespace": namespace}}],
        "current-context": "nobody",
    }  # fmt: skip
    path = tmp_path / "nobody.kubeconfig"
    path.write_text(yaml.safe_dump(restricted))
    out = status_cli(control_plane, "detector", "--kubeconfig", str(path))
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"modelfleet status: forbidden to get modelreleases.modelfleet.dev in namespace "
        f"{namespace} (403): your account needs get, list and watch on them"
    ]
