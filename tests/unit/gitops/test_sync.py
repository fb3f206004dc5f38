"""``sync_once`` on real git repositories, against an in-memory cluster (the integration test
in tests/integration/test_sync.py runs the same against the real API server)."""

from __future__ import annotations

import copy
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelfleet.api.source import source_revision
from modelfleet.errors import ClusterError
from modelfleet.gitops import SyncFailed, SyncRefused, UntrustedCommit
from modelfleet.gitops.apply import ObjectExists
from modelfleet.gitops.ownership import OWNER_ANNOTATION, SYNC_LABEL, ObjectRef, order
from modelfleet.gitops.source import GitSource, SignaturePolicy, fetch
from modelfleet.gitops.sync import SyncConfig, sync_once
from tests.unit.gitops.gitkit import GitRepo, digest_of, release_manifest

POLICY = {
    "apiVersion": "modelfleet.dev/v1alpha1",
    "kind": "TrustPolicy",
    "metadata": {"name": "prod-signers", "annotations": {"argocd.argoproj.io/sync-wave": "-1"}},
    "spec": {"authorities": [{"name": "k", "key": {"data": "PEM"}}]},
}
CLUSTER_SCOPED = {"TrustPolicy", "Namespace", "CustomResourceDefinition"}


class MemoryCluster:
    """The Applier interface over a dict, with server-assigned uids; records the apply order."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.applied: list[str] = []

    @staticmethod
    def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
        meta = obj["metadata"]
        return (obj["kind"], meta.get("namespace", ""), meta["name"])

    async def is_namespaced(self, api_version: str, kind: str) -> bool | None:
        return kind not in CLUSTER_SCOPED

    async def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        return self.objects.get((ref.kind, ref.namespace, ref.name))

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """An object created by someone else (a uid chosen by the "server")."""
        obj = copy.deepcopy(obj)
        obj["metadata"]["uid"] = str(uuid.uuid4())
        self.objects[self._key(obj)] = obj
        return obj

    async def create(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        if self._key(obj) in self.objects:
            raise ObjectExists(f"{self._key(obj)} exists")
        if obj["metadata"]["name"] == "rejected-by-the-api-server":
            raise ClusterError("cannot apply: invalid")
        if dry_run:
            return obj
        return self.add(obj)

    async def apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        meta = obj["metadata"]
        live = self.objects.get(self._key(obj))
        if live is not None and meta.get("uid") and meta["uid"] != live["metadata"]["uid"]:
            raise AssertionError("uid precondition failed")
        if meta.get("name") == "rejected-by-the-api-server":
            raise ClusterError("cannot apply: invalid")
        if not dry_run:
            new = copy.deepcopy(obj)
            new["metadata"]["uid"] = live["metadata"]["uid"] if live else str(uuid.uuid4())
            self.objects[self._key(obj)] = new
            self.applied.append(f"{obj['kind']}/{meta['name']}")
        return obj

    async def list(
        self, api_version: str, kind: str, label_selector: str, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        key, _, value = label_selector.partition("=")
        return [
            o
            for (k, ns, _), o in self.objects.items()
            if k == kind
            and (namespace is None or ns == namespace)
            and o["metadata"].get("labels", {}).get(key) == value
        ]

    async def delete(self, ref: ObjectRef, uid: str | None = None) -> None:
        live = self.objects[(ref.kind, ref.namespace, ref.name)]
        assert uid is None or live["metadata"]["uid"] == uid
        del self.objects[(ref.kind, ref.namespace, ref.name)]


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
    kw.setdefault("namespace", "retail")
    kw.setdefault("allow_trust_policies", True)
    return SyncConfig(
        source=GitSource(repo.path.as_uri(), "main", "fleet"), cache_dir=tmp_path / "cache", **kw
    )


async def test_applies_in_wave_order_and_stamps_the_git_source(
    fleet: GitRepo, tmp_path: Path
) -> None:
    cluster = MemoryCluster()
    result = await sync_once(config(fleet, tmp_path), cluster)
    assert result.revision == fleet.head()
    assert cluster.applied == ["TrustPolicy/prod-signers", "ModelRelease/detector"]
    release = cluster.objects[("ModelRelease", "retail", "detector")]
    assert release["metadata"]["labels"][SYNC_LABEL] == "default"
    found = source_revision(release)
    assert found is not None
    assert found.repo_url == fleet.path.as_uri() and found.revision == fleet.head()
    assert found.path == "fleet/releases/retail/detector.yaml"


async def test_revision_is_the_last_commit_that_changed_the_file(
    fleet: GitRepo, tmp_path: Path
) -> None:
    release_commit = fleet.head()
    fleet.commit("unrelated", {"fleet/README.md": "not yaml\n"})
    cluster = MemoryCluster()
    result = await sync_once(config(fleet, tmp_path), cluster)
    assert result.revision != release_commit
    release = cluster.objects[("ModelRelease", "retail", "detector")]
    assert release["metadata"]["annotations"]["modelfleet.dev/git-revision"] == release_commit


async def test_prune_deletes_only_what_this_sync_applied(fleet: GitRepo, tmp_path: Path) -> None:
    cluster = MemoryCluster()
    await sync_once(config(fleet, tmp_path), cluster)
    foreign = release_manifest("9.9.9", name="other")
    foreign["metadata"]["labels"] = {SYNC_LABEL: "default"}  # label copied, different repo
    cluster.add(foreign)
    fleet.git("rm", "-q", "fleet/releases/retail/detector.yaml")
    fleet.git("commit", "-q", "-m", "retire detector")
    result = await sync_once(config(fleet, tmp_path, prune=True), cluster)
    assert [str(r) for r in result.pruned] == ["ModelRelease retail/detector"]
    assert ("ModelRelease", "retail", "other") in cluster.objects
    assert ("TrustPolicy", "", "prod-signers") in cluster.objects


async def test_prune_false_annotation_keeps_the_object(fleet: GitRepo, tmp_path: Path) -> None:
    cluster = MemoryCluster()
    policy = {
        **POLICY,
        "metadata": {
            **POLICY["metadata"],
            "annotations": {"argocd.argoproj.io/sync-options": "Prune=false"},
        },
    }
    fleet.commit("keep policy", {"fleet/trustpolicies/prod.yaml": policy})
    await sync_once(config(fleet, tmp_path), cluster)
    fleet.git("rm", "-q", "fleet/trustpolicies/prod.yaml")
    fleet.git("commit", "-q", "-m", "drop policy file")
    result = await sync_once(config(fleet, tmp_path, prune=True), cluster)
    assert result.pruned == () and ("TrustPolicy", "", "prod-signers") in cluster.objects


async def test_empty_path_is_refused(repo: GitRepo, tmp_path: Path) -> None:
    repo.commit("empty", {"fleet/README.md": "nothing\n"})
    with pytest.raises(SyncFailed, match="refusing to sync an empty path"):
        await sync_once(config(repo, tmp_path, prune=True), MemoryCluster())


async def test_bad_manifest_applies_nothing(fleet: GitRepo, tmp_path: Path) -> None:
    fleet.commit("broken", {"fleet/zz.yaml": "kind: [unclosed\n"})
    cluster = MemoryCluster()
    with pytest.raises(SyncFailed, match=r"zz\.yaml"):
        await sync_once(config(fleet, tmp_path), cluster)
    assert cluster.applied == []


async def test_namespace_defaults_for_namespaced_objects(repo: GitRepo, tmp_path: Path) -> None:
    manifest = release_manifest("1.0.0")
    del manifest["metadata"]["namespace"]
    repo.commit("no ns", {"fleet/r.yaml": manifest})
    cluster = MemoryCluster()
    await sync_once(config(repo, tmp_path, namespace="stores"), cluster)
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


async def test_required_signature_accepts_an_allowed_ssh_key(
    fleet: GitRepo, tmp_path: Path
) -> None:
    key = _ssh_signing(fleet, tmp_path, "release_key")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"bot@example.com {key.with_suffix('.pub').read_text()}")
    trusted = fleet.head()  # the unsigned history so far, trusted by the operator
    fleet.git("commit", "-q", "-S", "--allow-empty", "-m", "signed release")
    cluster = MemoryCluster()
    policy = SignaturePolicy(allowed_signers=allowed)
    with pytest.raises(UntrustedCommit, match=r"whole history .*--trust-from"):
        await sync_once(
            config(fleet, tmp_path, signatures=policy), cluster
        )  # first sync: all of it
    result = await sync_once(
        config(fleet, tmp_path, signatures=policy, trust_from=trusted), cluster
    )
    assert result.signature is not None and result.signature.signer == "bot@example.com"
    assert len(cluster.applied) == 2


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "unknown-key"])
async def test_required_signature_refuses_and_applies_nothing(
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
        await sync_once(
            config(fleet, tmp_path, signatures=SignaturePolicy(allowed_signers=allowed)), cluster
        )
    assert cluster.applied == []


# --------------------------------------------------------------------------- allow-list (14)

CRB = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "pwned"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
    "subjects": [{"kind": "Group", "name": "system:authenticated"}],
}


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        (CRB, "fleet/zz.yaml: ClusterRoleBinding pwned: kind ClusterRoleBinding"),
        (
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}},
            "fleet/zz.yaml: Secret s: kind Secret (v1) is not allowed",
        ),
        (
            {**release_manifest("1.0.0", name="spoof"), "apiVersion": "evil.example.com/v1"},
            "ModelRelease retail/spoof: kind ModelRelease (evil.example.com/v1) is not allowed",
        ),
        (
            release_manifest("1.0.0", name="elsewhere", namespace="kube-system"),
            "ModelRelease kube-system/elsewhere: namespace 'kube-system' is not allowed",
        ),
    ],
    ids=["clusterrolebinding", "secret", "foreign-group", "namespace"],
)
async def test_a_commit_outside_the_allow_list_applies_nothing(
    fleet: GitRepo, tmp_path: Path, doc: dict[str, Any], named: str
) -> None:
    fleet.commit("sneak", {"fleet/zz.yaml": doc})
    cluster = MemoryCluster()
    with pytest.raises(SyncRefused, match="nothing applied") as refused:
        await sync_once(config(fleet, tmp_path), cluster)
    assert named in str(refused.value)
    assert cluster.applied == [] and cluster.objects == {}


async def test_trust_policies_need_the_flag(fleet: GitRepo, tmp_path: Path) -> None:
    cluster = MemoryCluster()
    with pytest.raises(SyncRefused, match=r"TrustPolicy prod-signers: kind TrustPolicy .*--allow"):
        await sync_once(config(fleet, tmp_path, allow_trust_policies=False), cluster)
    assert cluster.applied == []
    await sync_once(config(fleet, tmp_path, allow_trust_policies=True), cluster)
    assert ("TrustPolicy", "", "prod-signers") in cluster.objects


async def test_more_namespaces_can_be_allowed(fleet: GitRepo, tmp_path: Path) -> None:
    fleet.commit("stores", {"fleet/s.yaml": release_manifest("1.0.0", namespace="stores")})
    with pytest.raises(SyncRefused, match="namespace 'stores' is not allowed"):
        await sync_once(config(fleet, tmp_path), MemoryCluster())
    cluster = MemoryCluster()
    await sync_once(config(fleet, tmp_path, namespaces=("stores",)), cluster)
    assert ("ModelRelease", "stores", "detector") in cluster.objects
    assert ("ModelRelease", "retail", "detector") in cluster.objects


# --------------------------------------------------------------------------- ownership (15)


async def test_created_objects_record_their_uid(fleet: GitRepo, tmp_path: Path) -> None:
    cluster = MemoryCluster()
    await sync_once(config(fleet, tmp_path, name="edge"), cluster)
    live = cluster.objects[("ModelRelease", "retail", "detector")]
    assert live["metadata"]["annotations"][OWNER_ANNOTATION] == f"edge/{live['metadata']['uid']}"


async def test_an_existing_object_is_not_adopted_without_the_flag(
    fleet: GitRepo, tmp_path: Path
) -> None:
    cluster = MemoryCluster()
    handmade = cluster.add(release_manifest("0.1.0", digest_of("0")))
    with pytest.raises(SyncRefused, match=r"ModelRelease retail/detector exists .*--adopt"):
        await sync_once(config(fleet, tmp_path), cluster)
    assert cluster.applied == []
    assert cluster.objects[("ModelRelease", "retail", "detector")] == handmade
    result = await sync_once(config(fleet, tmp_path, adopt=True), cluster)
    assert [str(r) for r in result.adopted] == ["ModelRelease retail/detector"]
    live = cluster.objects[("ModelRelease", "retail", "detector")]
    assert live["metadata"]["uid"] == handmade["metadata"]["uid"]
    assert live["metadata"]["annotations"][OWNER_ANNOTATION].endswith(handmade["metadata"]["uid"])


async def test_copied_ownership_and_recreated_objects_are_not_pruned(
    fleet: GitRepo, tmp_path: Path
) -> None:
    cluster = MemoryCluster()
    await sync_once(config(fleet, tmp_path), cluster)
    synced = cluster.objects[("ModelRelease", "retail", "detector")]
    # every label and annotation copied onto a hand-made object
    copy_of = release_manifest("9.9.9", name="other")
    copy_of["metadata"]["labels"] = dict(synced["metadata"]["labels"])
    copy_of["metadata"]["annotations"] = dict(synced["metadata"]["annotations"])
    cluster.add(copy_of)
    # the synced object deleted and recreated by hand with the same metadata (new uid)
    del cluster.objects[("ModelRelease", "retail", "detector")]
    recreated = cluster.add({**synced, "metadata": {**synced["metadata"]}})
    fleet.git("rm", "-q", "fleet/releases/retail/detector.yaml")
    fleet.git("commit", "-q", "-m", "retire detector")
    result = await sync_once(config(fleet, tmp_path, prune=True), cluster)
    assert result.pruned == ()
    assert cluster.objects[("ModelRelease", "retail", "detector")] == recreated
    assert ("ModelRelease", "retail", "other") in cluster.objects


async def test_a_manifest_cannot_claim_ownership(fleet: GitRepo, tmp_path: Path) -> None:
    cluster = MemoryCluster()
    handmade = cluster.add(release_manifest("0.1.0", digest_of("0"), name="victim"))
    claim = release_manifest("1.0.0", name="victim")
    claim["metadata"]["uid"] = handmade["metadata"]["uid"]
    claim["metadata"]["annotations"] = {OWNER_ANNOTATION: f"default/{handmade['metadata']['uid']}"}
    fleet.commit("claim", {"fleet/victim.yaml": claim})
    with pytest.raises(SyncRefused, match="ModelRelease retail/victim exists"):
        await sync_once(config(fleet, tmp_path), cluster)
    assert cluster.applied == []


# --------------------------------------------------------------------------- signed ranges (16)


def _signed(repo: GitRepo, message: str, files: dict[str, Any] | None = None) -> str:
    for rel, content in (files or {}).items():
        repo.write(rel, content)
        repo.git("add", "--", rel)
    repo.git("commit", "-q", "-S", "--allow-empty", "-m", message)
    return repo.head()


@pytest.fixture
def signing(repo: GitRepo, tmp_path: Path) -> SignaturePolicy:
    """Signed commits from here on in ``repo`` (its first commit is unsigned)."""
    key = _ssh_signing(repo, tmp_path, "release_key")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"bot@example.com {key.with_suffix('.pub').read_text()}")
    return SignaturePolicy(allowed_signers=allowed)


async def test_every_commit_since_the_last_sync_must_be_signed(
    repo: GitRepo, tmp_path: Path, signing: SignaturePolicy
) -> None:
    base = repo.head()
    _signed(repo, "1.0.0", {"fleet/r.yaml": release_manifest("1.0.0", digest_of("1"))})
    cluster = MemoryCluster()
    cfg = config(repo, tmp_path, signatures=signing, trust_from=base)
    assert (await sync_once(cfg, cluster)).signature is not None
    unsigned = repo.commit("6.6.6", {"fleet/r.yaml": release_manifest("6.6.6", digest_of("6"))})
    _signed(repo, "signed, empty")
    with pytest.raises(UntrustedCommit, match=f"commit {unsigned[:12]} .*is not signed"):
        await sync_once(cfg, cluster)
    assert cluster.objects[("ModelRelease", "retail", "detector")]["spec"]["version"] == "1.0.0"
    # still refused on the next pass: the last applied revision did not move
    with pytest.raises(UntrustedCommit, match=unsigned[:12]):
        await sync_once(cfg, cluster)


async def test_an_unsigned_commit_on_a_merged_branch_is_refused(
    repo: GitRepo, tmp_path: Path, signing: SignaturePolicy
) -> None:
    base = repo.head()
    _signed(repo, "1.0.0", {"fleet/r.yaml": release_manifest("1.0.0", digest_of("1"))})
    cfg = config(repo, tmp_path, signatures=signing, trust_from=base)
    await sync_once(cfg, MemoryCluster())
    repo.git("checkout", "-q", "-b", "side")
    unsigned = repo.commit("6.6.6", {"fleet/r.yaml": release_manifest("6.6.6", digest_of("6"))})
    repo.git("checkout", "-q", "main")
    _signed(repo, "other work", {"notes.txt": "x\n"})
    repo.git("merge", "-q", "--no-ff", "-S", "-m", "merge side", "side")
    with pytest.raises(UntrustedCommit, match=f"commit {unsigned[:12]} .*is not signed"):
        await sync_once(cfg, MemoryCluster())


async def test_trust_from_must_be_an_ancestor(
    repo: GitRepo, tmp_path: Path, signing: SignaturePolicy
) -> None:
    repo.git("checkout", "-q", "-b", "elsewhere")
    elsewhere = _signed(repo, "not on main")
    repo.git("checkout", "-q", "main")
    _signed(repo, "1.0.0", {"fleet/r.yaml": release_manifest("1.0.0")})
    cfg = config(repo, tmp_path, signatures=signing, trust_from=elsewhere)
    with pytest.raises(SyncFailed, match="is not a commit of the fetched history"):
        await sync_once(cfg, MemoryCluster())  # never fetched: not in main's history
    fetch(GitSource(repo.path.as_uri(), "elsewhere", "fleet"), tmp_path / "cache")
    cluster = MemoryCluster()
    with pytest.raises(UntrustedCommit, match="is not an ancestor"):
        # fetched before, but main does not contain it
        await sync_once(config(repo, tmp_path, signatures=signing, trust_from=elsewhere), cluster)
    assert cluster.applied == []


async def test_going_back_to_an_applied_commit_needs_no_new_signatures(
    repo: GitRepo, tmp_path: Path, signing: SignaturePolicy
) -> None:
    base = repo.head()
    v1 = _signed(repo, "1.0.0", {"fleet/r.yaml": release_manifest("1.0.0", digest_of("1"))})
    _signed(repo, "2.0.0", {"fleet/r.yaml": release_manifest("2.0.0", digest_of("2"))})
    cluster = MemoryCluster()
    await sync_once(config(repo, tmp_path, signatures=signing, trust_from=base), cluster)
    repo.git("reset", "-q", "--hard", v1)  # the branch is moved back (force-push)
    result = await sync_once(config(repo, tmp_path, signatures=signing), cluster)
    assert result.revision == v1
    assert cluster.objects[("ModelRelease", "retail", "detector")]["spec"]["version"] == "1.0.0"


async def test_an_object_the_api_server_rejects_applies_nothing_of_the_commit(
    fleet: GitRepo, tmp_path: Path
) -> None:
    """The whole commit is dry-run first: an invalid object sorted last stops the rest."""
    bad = release_manifest("1.0.0", name="rejected-by-the-api-server")
    fleet.commit("bad", {"fleet/zz.yaml": bad})
    cluster = MemoryCluster()
    with pytest.raises(ClusterError, match="invalid"):
        await sync_once(config(fleet, tmp_path), cluster)
    assert cluster.applied == [] and cluster.objects == {}


async def test_turning_signatures_on_later_trusts_nothing_synced_before(
    repo: GitRepo, tmp_path: Path, signing: SignaturePolicy
) -> None:
    unsigned = repo.commit("1.0.0", {"fleet/r.yaml": release_manifest("1.0.0", digest_of("1"))})
    cluster = MemoryCluster()
    await sync_once(config(repo, tmp_path), cluster)  # no signatures required: applied
    _signed(repo, "signed, empty")
    with pytest.raises(UntrustedCommit, match=f"commit {unsigned[:12]} .*whole history"):
        await sync_once(config(repo, tmp_path, signatures=signing), cluster)


@pytest.fixture
def gpg_home(tmp_path: Path) -> Iterator[Path]:
    """A GnuPG home with two fresh signing keys (uids: release, rogue); stops its agent after."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    for uid in ("Release Bot <bot@example.com>", "Rogue <rogue@example.com>"):
        subprocess.run(
            ["gpg", "--homedir", str(home), "--batch", "--passphrase", "",
             "--quick-gen-key", uid, "ed25519", "sign", "never"],
            check=True, capture_output=True,
        )  # fmt: skip
    yield home
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)


def _gpg_fingerprint(home: Path, email: str) -> str:
    out = subprocess.run(
        ["gpg", "--homedir", str(home), "--with-colons", "--list-secret-keys", email],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


async def test_gpg_signed_ranges_are_checked_commit_by_commit(
    repo: GitRepo, tmp_path: Path, gpg_home: Path
) -> None:
    release_key = _gpg_fingerprint(gpg_home, "bot@example.com")
    rogue_key = _gpg_fingerprint(gpg_home, "rogue@example.com")
    env = {"GNUPGHOME": str(gpg_home)}
    repo.git("config", "gpg.format", "openpgp")

    def commit(message: str, key: str | None, version: str | None = None) -> str:
        if version:
            repo.write("fleet/r.yaml", release_manifest(version, digest_of(version[0])))
            repo.git("add", "--", "fleet/r.yaml")
        sign = [f"-S{key}"] if key else []
        repo.git("commit", "-q", *sign, "--allow-empty", "-m", message, env=env)
        return repo.head()

    base = repo.head()
    commit("1.0.0", release_key, "1.0.0")
    policy = SignaturePolicy(gpg_home=gpg_home, allowed_gpg_keys=(release_key,))
    cluster = MemoryCluster()
    result = await sync_once(config(repo, tmp_path, signatures=policy, trust_from=base), cluster)
    assert result.signature is not None and result.signature.fingerprint == release_key
    unsigned = commit("6.6.6 unsigned", None, "6.6.6")
    commit("looks reviewed", release_key)
    with pytest.raises(UntrustedCommit, match=f"commit {unsigned[:12]} .*is not signed"):
        await sync_once(config(repo, tmp_path, signatures=policy), cluster)
    repo.git("reset", "-q", "--hard", "HEAD~2")
    rogue = commit("7.7.7 by a key in the keyring but not allowed", rogue_key, "7.7.7")
    commit("looks reviewed", release_key)
    with pytest.raises(UntrustedCommit, match=f"commit {rogue[:12]} .*not in the allowed keys"):
        await sync_once(config(repo, tmp_path, signatures=policy), cluster)
    assert cluster.objects[("ModelRelease", "retail", "detector")]["spec"]["version"] == "1.0.0"
