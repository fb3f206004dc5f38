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

from modelfleet.api.source import source_revision
from modelfleet.devcluster import ControlPlane

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
            "--namespace",
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
    first = sync(control_plane, repo, tmp_path, namespace, "--allow-trust-policies")
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
    assert sync(control_plane, repo, tmp_path, namespace, "--allow-trust-policies").returncode == 0
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
    assert sync(control_plane, repo, tmp_path, namespace, "--allow-trust-policies").returncode == 0
    live = get(control_plane, "modelrelease", "detector", "-n", namespace)
    assert live["spec"]["version"] == "1.0.0"
    assert live["spec"]["artifact"]["digest"] == "sha256:" + "1" * 64
    assert live["metadata"]["annotations"]["modelfleet.dev/git-revision"] == revert

    # a release removed from Git is pruned; the policy and the other release stay
    repo.git("rm", "-q", f"fleet/releases/{namespace}/counter.yaml")
    repo.git("commit", "-q", "-m", "retire counter")
    pruned = sync(control_plane, repo, tmp_path, namespace, "--allow-trust-policies", "--prune")
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


def test_an_invalid_object_anywhere_in_the_commit_applies_nothing(
    control_plane: ControlPlane, fleet: tuple[FleetRepo, str], namespace: str, tmp_path: Path
) -> None:
    """The API server validates the whole commit (dry run) before anything is written."""
    repo, policy = fleet
    broken = release(namespace, "zz-broken", "1.0.0", "2", policy)
    broken["spec"]["rollout"]["steps"] = [{"name": "half", "percent": 50}]
    repo.commit(
        "a good release and a broken one",
        {
            f"fleet/releases/{namespace}/detector.yaml": release(
                namespace, "detector", "1.0.0", "1", policy
            ),
            f"fleet/releases/{namespace}/zz-broken.yaml": broken,
        },
    )
    out = sync(control_plane, repo, tmp_path, namespace)
    assert out.returncode == 1 and "zz-broken" in out.stderr and "percent: 100" in out.stderr
    assert get(control_plane, "modelreleases", "-n", namespace)["items"] == []


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


# --------------------------------------------------------------------------- attacks (issue 10)


def _ssh_key(tmp_path: Path, name: str) -> Path:
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def _allowed_signers(tmp_path: Path, key: Path) -> Path:
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"bot@example.com {key.with_suffix('.pub').read_text()}", encoding="utf-8")
    return allowed


def _sign_with(repo: FleetRepo, key: Path) -> None:
    repo.git("config", "gpg.format", "ssh")
    repo.git("config", "user.signingkey", str(key))


def _signed_commit(repo: FleetRepo, message: str, files: dict[str, Any] | None = None) -> str:
    for rel, doc in (files or {}).items():
        target = repo.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        repo.git("add", rel)
    repo.git("commit", "-q", "-S", "--allow-empty", "-m", message)
    return repo.git("rev-parse", "HEAD")


def _exists(control_plane: ControlPlane, *args: str) -> bool:
    out = control_plane.kubectl("get", *args, "-o", "name", check=False)
    return out.returncode == 0 and bool(out.stdout.strip())


def test_a_commit_with_a_kind_outside_the_allow_list_applies_nothing(
    control_plane: ControlPlane, fleet: tuple[FleetRepo, str], namespace: str, tmp_path: Path
) -> None:
    """Attack: a Git writer adds a ClusterRoleBinding to cluster-admin and a Secret in
    kube-system next to an ordinary release. The whole commit is refused, nothing applied."""
    repo, policy = fleet
    crb = f"pwned-{namespace}"
    repo.commit(
        "release plus a little extra",
        {
            f"fleet/releases/{namespace}/detector.yaml": release(
                namespace, "detector", "1.0.0", "1", policy
            ),
            "fleet/zz/escalate.yaml": {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": crb},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "Group", "name": "system:authenticated"}],
            },
        },
    )
    try:
        out = sync(control_plane, repo, tmp_path, namespace)
        assert out.returncode == 1, out.stdout
        assert "fleet/zz/escalate.yaml" in out.stderr
        assert f"ClusterRoleBinding {crb}" in out.stderr and "not allowed" in out.stderr
        assert not _exists(control_plane, "clusterrolebinding", crb)
        assert get(control_plane, "modelreleases", "-n", namespace)["items"] == []
    finally:
        control_plane.kubectl("delete", "clusterrolebinding", crb, "--ignore-not-found")


def test_a_commit_writing_outside_the_allowed_namespaces_applies_nothing(
    control_plane: ControlPlane, fleet: tuple[FleetRepo, str], namespace: str, tmp_path: Path
) -> None:
    """Attack: an allowed kind, but in kube-system (and a Secret there), next to a release."""
    repo, policy = fleet
    repo.commit(
        "releases in two namespaces",
        {
            f"fleet/releases/{namespace}/detector.yaml": release(
                namespace, "detector", "1.0.0", "1", policy
            ),
            "fleet/releases/kube-system/detector.yaml": release(
                "kube-system", f"detector-{namespace}", "1.0.0", "1", policy
            ),
            "fleet/secrets/steal.yaml": {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"steal-{namespace}", "namespace": "kube-system"},
                "stringData": {"token": "x"},
            },
        },
    )
    out = sync(control_plane, repo, tmp_path, namespace)
    assert out.returncode == 1, out.stdout
    assert "fleet/releases/kube-system/detector.yaml" in out.stderr
    assert "namespace 'kube-system' is not allowed" in out.stderr
    assert f"Secret kube-system/steal-{namespace}" in out.stderr
    assert get(control_plane, "modelreleases", "-n", namespace)["items"] == []
    assert not _exists(control_plane, "modelrelease", f"detector-{namespace}", "-n", "kube-system")
    assert not _exists(control_plane, "secret", f"steal-{namespace}", "-n", "kube-system")


def _hand_made(control_plane: ControlPlane, namespace: str, policy: str, **meta: Any) -> str:
    """A ModelRelease created by hand (kubectl create, not the sync); its uid."""
    doc = release(namespace, "handmade", "7.0.0", "7", policy)
    doc["metadata"].update(meta)
    control_plane.kubectl("create", "-f", "-", input=json.dumps(doc))
    uid = get(control_plane, "modelrelease", "handmade", "-n", namespace)["metadata"]["uid"]
    assert isinstance(uid, str)
    return uid


def test_an_object_made_by_hand_is_neither_adopted_nor_pruned(
    control_plane: ControlPlane, fleet: tuple[FleetRepo, str], namespace: str, tmp_path: Path
) -> None:
    """Attack: a same-named manifest appears for an object created by hand (the sync would take
    it over), then goes again (the sync would delete it)."""
    repo, policy = fleet
    uid = _hand_made(control_plane, namespace, policy)
    repo.commit(
        "claim the hand-made release",
        {
            f"fleet/releases/{namespace}/detector.yaml": release(
                namespace, "detector", "1.0.0", "1", policy
            ),
            f"fleet/releases/{namespace}/handmade.yaml": release(
                namespace, "handmade", "8.0.0", "8", policy
            ),
        },
    )
    out = sync(control_plane, repo, tmp_path, namespace)
    assert out.returncode == 1, out.stdout
    assert f"ModelRelease {namespace}/handmade" in out.stderr and "--adopt" in out.stderr
    live = get(control_plane, "modelrelease", "handmade", "-n", namespace)
    assert live["spec"]["version"] == "7.0.0" and live["metadata"]["uid"] == uid
    assert not _exists(control_plane, "modelrelease", "detector", "-n", namespace)

    repo.git("rm", "-q", f"fleet/releases/{namespace}/handmade.yaml")
    repo.git("commit", "-q", "-m", "drop the claim")
    out = sync(control_plane, repo, tmp_path, namespace, "--prune")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["pruned"] == []
    assert get(control_plane, "modelrelease", "handmade", "-n", namespace)["metadata"]["uid"] == uid


def test_labels_and_copied_annotations_do_not_make_an_object_prunable(
    control_plane: ControlPlane, fleet: tuple[FleetRepo, str], namespace: str, tmp_path: Path
) -> None:
    """Attack: a user labels an object with the sync's label (and copies every annotation of
    an object the sync did create) so that the next prune deletes it."""
    repo, policy = fleet
    repo.commit(
        "detector",
        {
            f"fleet/releases/{namespace}/detector.yaml": release(
                namespace, "detector", "1.0.0", "1", policy
            )
        },
    )
    assert sync(control_plane, repo, tmp_path, namespace).returncode == 0
    synced = get(control_plane, "modelrelease", "detector", "-n", namespace)["metadata"]
    copied = {k: v for k, v in synced["annotations"].items() if k.startswith("modelfleet.dev/")}
    uid = _hand_made(
        control_plane, namespace, policy, labels=dict(synced["labels"]), annotations=copied
    )
    out = sync(control_plane, repo, tmp_path, namespace, "--prune")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["pruned"] == []
    assert get(control_plane, "modelrelease", "handmade", "-n", namespace)["metadata"]["uid"] == uid


@pytest.mark.parametrize("via", ["first-parent", "merged-side-branch"])
def test_an_unsigned_commit_under_a_signed_tip_is_refused(
    control_plane: ControlPlane,
    fleet: tuple[FleetRepo, str],
    namespace: str,
    tmp_path: Path,
    via: str,
) -> None:
    """Attack: after a signed, synced release, an unsigned commit changes the release, and a
    signed commit goes on top (an empty commit, or a signed merge of the unsigned branch)."""
    repo, policy = fleet
    key = _ssh_key(tmp_path, "release_key")
    allowed = _allowed_signers(tmp_path, key)
    _sign_with(repo, key)
    manifest = f"fleet/releases/{namespace}/detector.yaml"
    _signed_commit(
        repo, "detector 1.0.0", {manifest: release(namespace, "detector", "1.0.0", "1", policy)}
    )
    args = ("--require-signed", "--allowed-signers", str(allowed))
    first = sync(control_plane, repo, tmp_path, namespace, *args)
    assert first.returncode == 0, first.stderr
    if via == "merged-side-branch":
        repo.git("checkout", "-q", "-b", "side")
    unsigned = repo.commit(
        "sneak in a release",
        {manifest: release(namespace, "detector", "6.6.6", "6", policy)},
    )
    if via == "merged-side-branch":
        repo.git("checkout", "-q", "main")
        _signed_commit(repo, "unrelated signed work", {"notes/work.yaml": {"a": 1}})
        repo.git("merge", "-q", "--no-ff", "-S", "-m", "merge side (signed)", "side")
        assert "gpgsig" in repo.git("cat-file", "commit", "HEAD")  # the merge is signed
    else:
        _signed_commit(repo, "looks reviewed")
    out = sync(control_plane, repo, tmp_path, namespace, *args)
    assert out.returncode == 1, out.stdout
    assert f"commit {unsigned[:12]}" in out.stderr and "is not signed" in out.stderr
    live = get(control_plane, "modelrelease", "detector", "-n", namespace)
    assert live["spec"]["version"] == "1.0.0"


def test_adopt_takes_over_and_a_removed_field_is_removed(
    control_plane: ControlPlane, fleet: tuple[FleetRepo, str], namespace: str, tmp_path: Path
) -> None:
    repo, policy = fleet
    uid = _hand_made(control_plane, namespace, policy)
    paused = release(namespace, "handmade", "8.0.0", "8", policy)
    paused["spec"]["paused"] = True
    repo.commit(
        "take over handmade, paused",
        {
            f"fleet/releases/{namespace}/handmade.yaml": paused,
            f"fleet/releases/{namespace}/detector.yaml": {
                **paused,
                "metadata": {"name": "detector", "namespace": namespace},
            },
        },
    )
    out = sync(control_plane, repo, tmp_path, namespace, "--adopt")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["adopted"] == [f"ModelRelease {namespace}/handmade"]
    live = get(control_plane, "modelrelease", "handmade", "-n", namespace)
    assert live["metadata"]["annotations"]["modelfleet.dev/sync-owner"] == f"{namespace}/{uid}"
    assert live["spec"]["version"] == "8.0.0" and live["spec"]["paused"] is True
    # a field set at creation and later removed from Git is removed from the object
    assert get(control_plane, "modelrelease", "detector", "-n", namespace)["spec"]["paused"]
    created = release(namespace, "detector", "8.0.0", "8", policy)
    repo.commit("unpause detector", {f"fleet/releases/{namespace}/detector.yaml": created})
    assert sync(control_plane, repo, tmp_path, namespace).returncode == 0
    live = get(control_plane, "modelrelease", "detector", "-n", namespace)
    assert not live["spec"].get("paused")
    assert {(m["manager"], m["operation"]) for m in live["metadata"]["managedFields"]} == {
        ("modelfleet-sync", "Apply")
    }
    # adopted objects are the sync's: pruned when gone from Git
    repo.git("rm", "-q", f"fleet/releases/{namespace}/handmade.yaml")
    repo.git("commit", "-q", "-m", "retire handmade")
    out = sync(control_plane, repo, tmp_path, namespace, "--prune")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["pruned"] == [f"ModelRelease {namespace}/handmade"]
