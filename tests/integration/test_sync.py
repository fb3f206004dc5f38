"""``modelfleet sync`` against the real API server: a real git repository, the real CLI process,
server-side apply, stamped Git source, prune, rollback by revert, and signed-commit refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.devcluster import ControlPlane
from modelfleet.gitops.revision import source_revision

pytestmark = pytest.mark.cluster

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Release Bot",
    "GIT_AUTHOR_EMAIL": "bot@example.com",
    "GIT_COMMITTER_NAME": "Release Bot",
    "GIT_COMMITTER_EMAIL": "bot@example.com",
}


def release(
    namespace: str, name: str, version: str, digest_char: str, policy: str
) -> dict[str, Any]:
    return {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "ModelRelease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": name,
            "version": version,
            "artifact": {
                "uri": f"https://models.example.com/{name}/{version}/model.tar",
                "digest": "sha256:" + digest_char * 64,
            },
            "trustPolicy": policy,
            "rollout": {
                "steps": [
                    {"name": "canary", "percent": 5, "bake": "10m"},
                    {"name": "fleet", "percent": 100},
                ]
            },
        },
    }


def trust_policy(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "TrustPolicy",
        "metadata": {"name": name, "annotations": {"argocd.argoproj.io/sync-wave": "-1"}},
        "spec": {"authorities": [{"name": "release-key", "key": {"file": "release.pub"}}]},
    }


class FleetRepo:
    def __init__(self, path: Path, home: Path) -> None:
        self.path = path
        self.env = {**os.environ, **GIT_ENV, "HOME": str(home), "GIT_CONFIG_GLOBAL": os.devnull}
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", *args], cwd=self.path, env=self.env, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()

    def commit(self, message: str, files: dict[str, Any]) -> str:
        for rel, doc in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
            self.git("add", rel)
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def fleet(
    tmp_path: Path, namespace: str, control_plane: ControlPlane
) -> Iterator[tuple[FleetRepo, str]]:
    repo = FleetRepo(tmp_path / "fleet-config", tmp_path)
    policy = f"signers-{namespace}"
    yield repo, policy
    control_plane.kubectl("delete", "trustpolicy", policy, "--ignore-not-found", check=False)


def sync(
    control_plane: ControlPlane, repo: FleetRepo, tmp_path: Path, name: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "modelfleet",
            "sync",
            repo.path.as_uri(),
            "--ref",
            "main",
            "--path",
            "fleet",
            "--name",
            name,
            "--cache-dir",
            str(tmp_path / "cache"),
            "--json",
            *extra,
        ],
        env={**control_plane.env, **repo.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def get(control_plane: ControlPlane, *args: str) -> dict[str, Any]:
    out = control_plane.kubectl("get", *args, "-o", "json", "--show-managed-fields")
    data = json.loads(out.stdout)
    assert isinstance(data, dict)
    return data


def test_sync_applies_stamps_rolls_back_and_prunes(
    control_plane: ControlPlane, fleet: tuple[FleetRepo, str], namespace: str, tmp_path: Path
) -> None:
    repo, policy = fleet
    v1 = repo.commit(
        "detector 1.0.0 and the policy",
        {
            "fleet/trustpolicies/policy.yaml": trust_policy(policy),
            f"fleet/releases/{namespace}/detector.yaml": release(
                namespace, "detector", "1.0.0", "1", policy
            ),
            f"fleet/releases/{namespace}/counter.yaml": release(
                namespace, "counter", "0.3.0", "3", policy
            ),
        },
    )
    first = sync(control_plane, repo, tmp_path, namespace)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["revision"] == v1
    assert result["applied"][0] == f"TrustPolicy {policy}"  # wave -1 first
    live = get(control_plane, "modelrelease", "detector", "-n", namespace)
    assert live["spec"]["version"] == "1.0.0"
    assert live["metadata"]["labels"]["modelfleet.dev/sync"] == namespace
    assert {m["manager"] for m in live["metadata"]["managedFields"]} == {"modelfleet-sync"}
    found = source_revision(live)
    assert found is not None and found.revision == v1
    assert found.path == f"fleet/releases/{namespace}/detector.yaml"

    bad = repo.commit(
        "detector 2.0.0",
        {
            f"fleet/releases/{namespace}/detector.yaml": release(
                namespace, "detector", "2.0.0", "2", policy
            )
        },
    )
    assert sync(control_plane, repo, tmp_path, namespace).returncode == 0
    assert (
        get(control_plane, "modelrelease", "detector", "-n", namespace)["spec"]["version"]
        == "2.0.0"
    )

    # roll back with the CLI (git revert), sync, and the cluster runs 1.0.0 again
    rb = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelfleet",
            "rollback",
            f"{namespace}/detector",
            "--repo",
            str(repo.path),
            "--releases-dir",
            "fleet/releases",
        ],
        env=repo.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert rb.returncode == 0, rb.stderr
    revert = repo.git("rev-parse", "HEAD")
    assert f"This reverts commit {bad}" in repo.git("log", "-1", "--format=%B")
    assert sync(control_plane, repo, tmp_path, namespace).returncode == 0
    live = get(control_plane, "modelrelease", "detector", "-n", namespace)
    assert live["spec"]["version"] == "1.0.0"
    assert live["spec"]["artifact"]["digest"] == "sha256:" + "1" * 64
    assert live["metadata"]["annotations"]["modelfleet.dev/git-revision"] == revert

    # a release removed from Git is pruned; the policy and the other release stay
    repo.git("rm", "-q", f"fleet/releases/{namespace}/counter.yaml")
    repo.git("commit", "-q", "-m", "retire counter")
    pruned = sync(control_plane, repo, tmp_path, namespace, "--prune")
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout)["pruned"] == [f"ModelRelease {namespace}/counter"]
    names = [
        i["metadata"]["name"] for i in get(control_plane, "modelreleases", "-n", namespace)["items"]
    ]
    assert names == ["detector"]
    assert get(control_plane, "trustpolicy", policy)["metadata"]["name"] == policy


def test_invalid_manifest_is_refused_by_the_api_server_and_named(
    control_plane: ControlPlane, fleet: tuple[FleetRepo, str], namespace: str, tmp_path: Path
) -> None:
    repo, policy = fleet
    broken = release(namespace, "detector", "1.0.0", "1", policy)
    broken["spec"]["rollout"]["steps"] = [{"name": "half", "percent": 50}]
    repo.commit("broken steps", {f"fleet/releases/{namespace}/detector.yaml": broken})
    out = sync(control_plane, repo, tmp_path, namespace)
    assert out.returncode == 1
    assert "cannot apply ModelRelease" in out.stderr and "percent: 100" in out.stderr


def test_unsigned_commit_is_refused_when_signatures_are_required(
    control_plane: ControlPlane, fleet: tuple[FleetRepo, str], namespace: str, tmp_path: Path
) -> None:
    repo, policy = fleet
    repo.commit(
        "unsigned release",
        {
            f"fleet/releases/{namespace}/detector.yaml": release(
                namespace, "detector", "1.0.0", "1", policy
            )
        },
    )
    key = tmp_path / "allowed_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"bot@example.com {key.with_suffix('.pub').read_text()}", encoding="utf-8")
    out = sync(
        control_plane,
        repo,
        tmp_path,
        namespace,
        "--require-signed",
        "--allowed-signers",
        str(allowed),
    )
    assert out.returncode == 1 and "is not signed" in out.stderr
    items = get(control_plane, "modelreleases", "-n", namespace)["items"]
    assert items == []
