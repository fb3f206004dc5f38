"""``sync_once`` on real git repositories, against an in-memory cluster (the integration test
in tests/integration/test_sync.py runs the same against the real API server)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from modelfleet.gitops import SyncFailed, UntrustedCommit
from modelfleet.gitops.revision import source_revision
from modelfleet.gitops.source import GitSource, SignaturePolicy
from modelfleet.gitops.sync import SYNC_LABEL, SyncConfig, order, sync_once
from tests.unit.gitops.gitkit import GitRepo, digest_of, release_manifest

POLICY = {
    "apiVersion": "modelfleet.dev/v1alpha1",
    "kind": "TrustPolicy",
    "metadata": {"name": "prod-signers", "annotations": {"argocd.argoproj.io/sync-wave": "-1"}},
    "spec": {"authorities": [{"name": "k", "key": {"data": "PEM"}}]},
}
CLUSTER_SCOPED = {"TrustPolicy", "Namespace", "CustomResourceDefinition"}


class MemoryCluster:
    """The Applier interface over a dict; records the apply order."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.applied: list[str] = []

    def is_namespaced(self, api_version: str, kind: str) -> bool | None:
        return kind not in CLUSTER_SCOPED

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        meta = obj["metadata"]
        if not dry_run:
            self.objects[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
        self.applied.append(f"{obj['kind']}/{meta['name']}")
        return obj

    def list(self, api_version: str, kind: str, label_selector: str) -> list[dict[str, Any]]:
        key, _, value = label_selector.partition("=")
        return [
            o
            for (k, _, _), o in self.objects.items()
            if k == kind and o["metadata"].get("labels", {}).get(key) == value
        ]

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> None:
        del self.objects[(kind, namespace or "", name)]


@pytest.fixture
def fleet(repo: GitRepo) -> GitRepo:
    repo.commit(
        "fleet",
        {
            "fleet/trustpolicies/prod.yaml": POLICY,
            "fleet/releases/retail/detector.yaml": release_manifest("1.0.0", digest_of("1")),
        },
    )
    return repo


def config(repo: GitRepo, tmp_path: Path, **kw: Any) -> SyncConfig:
    return SyncConfig(
        source=GitSource(repo.path.as_uri(), "main", "fleet"), cache_dir=tmp_path / "cache", **kw
    )


def test_applies_in_wave_order_and_stamps_the_git_source(fleet: GitRepo, tmp_path: Path) -> None:
    cluster = MemoryCluster()
    result = sync_once(config(fleet, tmp_path), cluster)
    assert result.revision == fleet.head()
    assert cluster.applied == ["TrustPolicy/prod-signers", "ModelRelease/detector"]
    release = cluster.objects[("ModelRelease", "retail", "detector")]
    assert release["metadata"]["labels"][SYNC_LABEL] == "default"
    found = source_revision(release)
    assert found is not None
    assert found.repo_url == fleet.path.as_uri() and found.revision == fleet.head()
    assert found.path == "fleet/releases/retail/detector.yaml"


def test_revision_is_the_last_commit_that_changed_the_file(fleet: GitRepo, tmp_path: Path) -> None:
    release_commit = fleet.head()
    fleet.commit("unrelated", {"fleet/README.md": "not yaml\n"})
    cluster = MemoryCluster()
    result = sync_once(config(fleet, tmp_path), cluster)
    assert result.revision != release_commit
    release = cluster.objects[("ModelRelease", "retail", "detector")]
    assert release["metadata"]["annotations"]["modelfleet.dev/git-revision"] == release_commit


def test_prune_deletes_only_what_this_sync_applied(fleet: GitRepo, tmp_path: Path) -> None:
    cluster = MemoryCluster()
    sync_once(config(fleet, tmp_path), cluster)
    foreign = release_manifest("9.9.9", name="other")
    foreign["metadata"]["labels"] = {SYNC_LABEL: "default"}  # label copied, different repo
    cluster.objects[("ModelRelease", "retail", "other")] = foreign
    fleet.git("rm", "-q", "fleet/releases/retail/detector.yaml")
    fleet.git("commit", "-q", "-m", "retire detector")
    result = sync_once(config(fleet, tmp_path, prune=True), cluster)
    assert [str(r) for r in result.pruned] == ["ModelRelease retail/detector"]
    assert ("ModelRelease", "retail", "other") in cluster.objects
    assert ("TrustPolicy", "", "prod-signers") in cluster.objects


def test_prune_false_annotation_keeps_the_object(fleet: GitRepo, tmp_path: Path) -> None:
    cluster = MemoryCluster()
    policy = {
        **POLICY,
        "metadata": {
            **POLICY["metadata"],
            "annotations": {"argocd.argoproj.io/sync-options": "Prune=false"},
        },
    }
    fleet.commit("keep policy", {"fleet/trustpolicies/prod.yaml": policy})
    sync_once(config(fleet, tmp_path), cluster)
    fleet.git("rm", "-q", "fleet/trustpolicies/prod.yaml")
    fleet.git("commit", "-q", "-m", "drop policy file")
    result = sync_once(config(fleet, tmp_path, prune=True), cluster)
    assert result.pruned == () and ("TrustPolicy", "", "prod-signers") in cluster.objects


def test_empty_path_is_refused(repo: GitRepo, tmp_path: Path) -> None:
    repo.commit("empty", {"fleet/README.md": "nothing\n"})
    with pytest.raises(SyncFailed, match="refusing to sync an empty path"):
        sync_once(config(repo, tmp_path, prune=True), MemoryCluster())


def test_bad_manifest_applies_nothing(fleet: GitRepo, tmp_path: Path) -> None:
    fleet.commit("broken", {"fleet/zz.yaml": "kind: [unclosed\n"})
    cluster = MemoryCluster()
    with pytest.raises(SyncFailed, match=r"zz\.yaml"):
        sync_once(config(fleet, tmp_path), cluster)
    assert cluster.applied == []


def test_namespace_defaults_for_namespaced_objects(repo: GitRepo, tmp_path: Path) -> None:
    manifest = release_manifest("1.0.0")
    del manifest["metadata"]["namespace"]
    repo.commit("no ns", {"fleet/r.yaml": manifest})
    cluster = MemoryCluster()
    sync_once(config(repo, tmp_path, namespace="stores"), cluster)
    assert ("ModelRelease", "stores", "detector") in cluster.objects


def test_invalid_sync_wave_is_reported() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "annotations": {"argocd.argoproj.io/sync-wave": "first"}},
    }
    with pytest.raises(SyncFailed, match="not an integer"):
        order([obj])


def _ssh_signing(repo: GitRepo, tmp_path: Path, name: str) -> Path:
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    repo.git("config", "gpg.format", "ssh")
    repo.git("config", "user.signingkey", str(key))
    return key


def test_required_signature_accepts_an_allowed_ssh_key(fleet: GitRepo, tmp_path: Path) -> None:
    key = _ssh_signing(fleet, tmp_path, "release_key")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"bot@example.com {key.with_suffix('.pub').read_text()}")
    fleet.git("commit", "-q", "-S", "--allow-empty", "-m", "signed release")
    cluster = MemoryCluster()
    result = sync_once(
        config(fleet, tmp_path, signatures=SignaturePolicy(allowed_signers=allowed)), cluster
    )
    assert result.signature is not None and result.signature.signer == "bot@example.com"
    assert len(cluster.applied) == 2


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "unknown-key"])
def test_required_signature_refuses_and_applies_nothing(
    fleet: GitRepo, tmp_path: Path, signed: bool
) -> None:
    allowed_key = tmp_path / "allowed"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(allowed_key)], check=True
    )
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"bot@example.com {allowed_key.with_suffix('.pub').read_text()}")
    if signed:
        _ssh_signing(fleet, tmp_path, "rogue_key")
        fleet.git("commit", "-q", "-S", "--allow-empty", "-m", "signed by someone else")
    cluster = MemoryCluster()
    with pytest.raises(UntrustedCommit, match="refusing to sync"):
        sync_once(
            config(fleet, tmp_path, signatures=SignaturePolicy(allowed_signers=allowed)), cluster
        )
    assert cluster.applied == []
