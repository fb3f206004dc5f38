"""``create_release``: validated, verified, committed on a new branch; refused otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import git
import pytest
import yaml

from modelfleet.gitops import ReleaseRef, ReleaseRefused, ReleaseRequest, create_release
from tests.trustkit import SignedModel, make_key, make_signed_model
from tests.unit.gitops.gitkit import GitRepo, release_manifest

REF = ReleaseRef("retail", "detector")
FILE = "releases/retail/detector.yaml"


@pytest.fixture
def signed(tmp_path: Path) -> SignedModel:
    return make_signed_model(tmp_path / "build", policy_name="prod-signers")


@pytest.fixture
def fleet_repo(repo: GitRepo, signed: SignedModel) -> GitRepo:
    """The GitOps repository, with the TrustPolicy the releases name."""
    repo.commit("trust policy", {"cluster/trustpolicy.yaml": signed.policy_path.read_text("utf-8")})
    return repo


def request(signed: SignedModel, version: str = "2.1.0", **kw: Any) -> ReleaseRequest:
    fields = {
        "ref": REF,
        "version": version,
        "uri": signed.artifact.as_uri(),
        "signature_uri": signed.signature.as_uri(),
        "trust_policy": "prod-signers",
        **kw,
    }
    return ReleaseRequest(**fields)


def test_first_release_creates_the_file_on_a_new_branch(
    fleet_repo: GitRepo, signed: SignedModel
) -> None:
    head = fleet_repo.head()
    result = create_release(fleet_repo.path, request(signed))
    assert result.branch == "release/retail/detector/2.1.0"
    assert result.digest == signed.digest  # computed from the file:// artifact
    # the checkout is untouched: same branch, same commit, no new file
    assert fleet_repo.head() == head and fleet_repo.status() == ""
    assert fleet_repo.git("rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert not (fleet_repo.path / FILE).exists()
    commit = git.Repo(fleet_repo.path).commit(result.branch)
    assert commit.hexsha == result.commit and commit.parents[0].hexsha == head
    data = yaml.safe_load((commit.tree / FILE).data_stream.read())
    assert data["spec"]["version"] == "2.1.0"
    assert data["spec"]["artifact"] == {
        "uri": signed.artifact.as_uri(),
        "digest": signed.digest,
        "signature": {"uri": signed.signature.as_uri()},
    }
    message = str(commit.message)
    assert message.startswith("release retail/detector: detector 2.1.0")
    assert f"Digest: {signed.digest}" in message and "Model: detector" in message
    assert "Verified: TrustPolicy prod-signers" in message
    assert not list((fleet_repo.path / ".git" / "worktrees").glob("*"))


def test_update_keeps_comments_and_changes_only_the_release_lines(
    fleet_repo: GitRepo, signed: SignedModel
) -> None:
    text = yaml.safe_dump(release_manifest("2.0.0"), sort_keys=False)
    text = "# detector for retail stores: owned by the vision team\n" + text.replace(
        "  trustPolicy:", "  # who may sign\n  trustPolicy:"
    )
    fleet_repo.commit("detector 2.0.0", {FILE: text})
    result = create_release(fleet_repo.path, request(signed, "2.1.0"))
    diff = fleet_repo.git("diff", "main", result.branch, "--", FILE)
    changed = [
        line
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert all(
        any(k in line for k in ("version", "uri", "digest", "signature")) for line in changed
    ), changed
    new = (git.Repo(fleet_repo.path).commit(result.branch).tree / FILE).data_stream.read()
    assert b"# who may sign" in new and b"owned by the vision team" in new
    assert result.previous_version == "2.0.0"


def test_version_that_looks_like_a_number_stays_a_string(
    fleet_repo: GitRepo, signed: SignedModel
) -> None:
    result = create_release(fleet_repo.path, request(signed, "1.10"))
    blob = (git.Repo(fleet_repo.path).commit(result.branch).tree / FILE).data_stream.read()
    assert yaml.safe_load(blob)["spec"]["version"] == "1.10"


def test_invalid_manifest_is_refused_and_no_branch_is_left(
    fleet_repo: GitRepo, signed: SignedModel
) -> None:
    with pytest.raises(ReleaseRefused, match=r"spec\.version may contain only"):
        create_release(fleet_repo.path, request(signed, "2.1.0 beta", branch="rel"))
    assert fleet_repo.git("branch", "--list", "rel") == ""


def test_invalid_existing_steps_are_refused(fleet_repo: GitRepo, signed: SignedModel) -> None:
    manifest = release_manifest("2.0.0")
    fleet_repo.commit("detector 2.0.0", {FILE: manifest})
    manifest["spec"]["rollout"]["steps"] = [{"name": "a", "percent": 50}]
    fleet_repo.commit("broken by hand", {FILE: manifest})
    with pytest.raises(Exception, match="last step must have percent: 100"):
        create_release(fleet_repo.path, request(signed))


def test_digest_that_does_not_match_the_bytes_is_refused(
    fleet_repo: GitRepo, signed: SignedModel
) -> None:
    with pytest.raises(ReleaseRefused, match="does not match the artifact"):
        create_release(fleet_repo.path, request(signed, digest="sha256:" + "0" * 64))


def test_artifact_signed_by_an_untrusted_key_is_refused(
    fleet_repo: GitRepo, tmp_path: Path
) -> None:
    rogue = make_signed_model(tmp_path / "rogue", key=make_key(), policy_name="prod-signers")
    with pytest.raises(ReleaseRefused, match="fails TrustPolicy") as info:
        create_release(fleet_repo.path, request(rogue))
    assert "signature" in str(info.value)
    assert fleet_repo.git("branch", "--list", "release/*") == ""


def test_unsigned_artifact_is_refused(fleet_repo: GitRepo, signed: SignedModel) -> None:
    with pytest.raises(ReleaseRefused, match="fails TrustPolicy"):
        create_release(fleet_repo.path, request(signed, signature_uri=None))


def test_missing_policy_is_refused(repo: GitRepo, signed: SignedModel) -> None:
    with pytest.raises(ReleaseRefused, match="never committed unverified"):
        create_release(repo.path, request(signed))


def test_policy_file_must_be_the_policy_the_release_names(
    repo: GitRepo, signed: SignedModel
) -> None:
    with pytest.raises(ReleaseRefused, match="names trustPolicy 'other'"):
        create_release(
            repo.path, request(signed, trust_policy="other", policy_file=signed.policy_path)
        )
    result = create_release(repo.path, request(signed, policy_file=signed.policy_path))
    assert result.version == "2.1.0"


def test_same_version_and_digest_is_refused(fleet_repo: GitRepo, signed: SignedModel) -> None:
    result = create_release(fleet_repo.path, request(signed))
    fleet_repo.git("merge", "-q", result.branch)
    with pytest.raises(ReleaseRefused, match=r"already at 2\.1\.0"):
        create_release(fleet_repo.path, request(signed, branch="again"))


def test_push_sends_the_branch_to_the_remote(
    fleet_repo: GitRepo, signed: SignedModel, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    git.Repo.init(remote, bare=True)
    fleet_repo.git("remote", "add", "origin", str(remote))
    result = create_release(fleet_repo.path, request(signed, push=True))
    assert result.pushed
    assert git.Repo(remote).commit(result.branch).hexsha == result.commit


def test_a_release_of_an_oci_artifact_is_verified_from_the_registry(
    fleet_repo: GitRepo, signed: SignedModel
) -> None:
    from tests.fetchkit import LoopbackServer

    registry = LoopbackServer().start()
    try:
        uri = registry.oci(
            "models/detector", "2.1.0", signed.artifact.read_bytes(), realm=registry.url + "/t"
        )
        sig = registry.bytes("/detector.sig", signed.signature.read_bytes())
        result = create_release(fleet_repo.path, request(signed, uri=uri, signature_uri=sig))
    finally:
        registry.stop()
    assert result.digest == signed.digest
    assert registry.hits["/t"] == 1


def test_a_refusal_names_the_trust_policy_not_its_file(fleet_repo: GitRepo, tmp_path: Path) -> None:
    rogue = make_signed_model(tmp_path / "rogue", key=make_key(), policy_name="prod-signers")
    with pytest.raises(ReleaseRefused) as info:
        create_release(fleet_repo.path, request(rogue))
    assert "the artifact fails TrustPolicy 'prod-signers': " in str(info.value)
    assert "trustpolicy.yaml" not in str(info.value)
