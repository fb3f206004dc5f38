"""``rollback``: git revert of the commit that set the current version, on real repositories."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from modelfleet.gitops import (
    DirtyWorkTree,
    GitOpsError,
    ReleaseNotFound,
    ReleaseRef,
    RevertConflict,
    plan_rollback,
    rollback,
)
from tests.unit.gitops.gitkit import GitRepo, digest_of, release_manifest

REF = ReleaseRef("retail", "detector")
FILE = "releases/retail/detector.yaml"


def version(repo: GitRepo) -> str:
    return str(repo.read_release()["spec"]["version"])


def test_reverts_the_commit_that_set_the_version_past_unrelated_commits(repo: GitRepo) -> None:
    repo.release("1.0.0", digest_of("1"))
    bad = repo.release("2.0.0", digest_of("2"))
    repo.commit("unrelated", {"docs/a.md": "a\n"})
    result = rollback(repo.path, REF)
    assert result.plan.commit == bad and result.plan.mode == "revert"
    assert version(repo) == "1.0.0"
    assert repo.read_release()["spec"]["artifact"]["digest"] == digest_of("1")
    message = repo.git("log", "-1", "--format=%B")
    assert f"This reverts commit {bad}." in message
    assert "Roll back retail/detector from 2.0.0 to 1.0.0" in message
    assert "Version: 1.0.0" in message
    assert (repo.path / "docs/a.md").exists() and repo.status() == ""
    assert result.version == "1.0.0" and result.also_changed == ()


def test_refuses_on_a_dirty_tree(repo: GitRepo) -> None:
    repo.release("1.0.0", digest_of("1"))
    repo.release("2.0.0", digest_of("2"))
    (repo.path / "README.md").write_text("edited\n", encoding="utf-8")
    before = repo.head()
    with pytest.raises(DirtyWorkTree, match=r"README\.md"):
        rollback(repo.path, REF)
    assert repo.head() == before


def test_refuses_while_a_merge_is_in_progress(repo: GitRepo) -> None:
    repo.release("1.0.0", digest_of("1"))
    (Path(repo.path) / ".git" / "MERGE_HEAD").write_text(repo.head() + "\n", encoding="utf-8")
    with pytest.raises(DirtyWorkTree, match="merge is in progress"):
        rollback(repo.path, REF)


def test_conflicting_revert_is_aborted_and_leaves_the_repository_as_it_was(
    repo: GitRepo,
) -> None:
    repo.release("1.0.0", digest_of("1"))
    repo.release("2.0.0", digest_of("2"))
    # a later commit rewrites the lines around the version: the revert cannot apply
    manifest = release_manifest("2.0.0", digest_of("2"), model="detector-v2")
    manifest["spec"]["artifact"]["uri"] = "https://mirror.example.com/detector/2.0.0.tar"
    repo.commit("rename model stream, move to the mirror", {FILE: manifest})
    before = repo.head()
    with pytest.raises(RevertConflict, match=FILE):
        rollback(repo.path, REF)
    assert repo.head() == before and repo.status() == ""
    assert not (repo.path / ".git" / "REVERT_HEAD").exists()
    assert repo.git("rev-parse", "--abbrev-ref", "HEAD") == "main"


def test_conflict_on_a_new_branch_deletes_it_and_returns_to_the_original(repo: GitRepo) -> None:
    repo.release("1.0.0", digest_of("1"))
    repo.release("2.0.0", digest_of("2"))
    changed = release_manifest("2.0.0", digest_of("2"), model="other")
    repo.commit("rename model stream", {FILE: changed})
    with pytest.raises(RevertConflict):
        rollback(repo.path, REF, branch="rollback/detector")
    assert repo.git("rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert repo.git("branch", "--list", "rollback/detector") == ""
    assert repo.status() == ""


def test_merged_release_reverts_only_the_commit_that_changed_the_version(repo: GitRepo) -> None:
    repo.release("1.0.0", digest_of("1"))
    repo.git("checkout", "-q", "-b", "release-2")
    side = repo.release("2.0.0", digest_of("2"))
    repo.commit("other change in the same PR", {"gateways/store-1.yaml": "kind: EdgeGateway\n"})
    repo.git("checkout", "-q", "main")
    repo.commit("unrelated on main", {"docs/m.md": "m\n"})
    repo.git("merge", "-q", "--no-ff", "-m", "Merge pull request #7", "release-2")
    plan = plan_rollback(git.Repo(repo.path), REF)
    assert plan.commit == side and plan.mainline is None
    rollback(repo.path, REF)
    assert version(repo) == "1.0.0"
    assert (repo.path / "gateways/store-1.yaml").exists()  # the rest of the PR stays


def test_merge_that_resolved_a_conflict_is_reverted_with_mainline_one(repo: GitRepo) -> None:
    repo.release("1.0.0", digest_of("1"))
    repo.git("checkout", "-q", "-b", "side")
    repo.release("2.0.0", digest_of("2"))
    repo.git("checkout", "-q", "main")
    repo.release("1.5.0", digest_of("5"))
    repo.git("merge", "-q", "side", check=False)  # conflicts on the version
    repo.write(FILE, release_manifest("3.0.0", digest_of("3")))
    repo.git("add", FILE)
    repo.git("commit", "-q", "--no-edit")
    merge = repo.head()
    plan = plan_rollback(git.Repo(repo.path), REF)
    assert plan.commit == merge and plan.mainline == 1
    result = rollback(repo.path, REF)
    assert version(repo) == "1.5.0"  # what main ran before the merge
    assert f"This reverts commit {merge}, reversing changes made to" in repo.git(
        "log", "-1", "--format=%B"
    )
    assert result.plan.target_version == "1.5.0"


def test_to_the_previous_version_is_the_same_revert(repo: GitRepo) -> None:
    repo.release("1.0.0", digest_of("1"))
    bad = repo.release("2.0.0", digest_of("2"))
    result = rollback(repo.path, REF, to_version="1.0.0")
    assert result.plan.mode == "revert" and result.plan.commit == bad


def test_to_an_older_version_restores_its_artifact_and_keeps_later_tuning(
    repo: GitRepo,
) -> None:
    first = repo.release("1.0.0", digest_of("1"))
    repo.release("2.0.0", digest_of("2"))
    steps = [{"name": "canary", "percent": 10, "bake": "30m"}, {"name": "all", "percent": 100}]
    repo.release("3.0.0", digest_of("3"), steps=steps)
    result = rollback(repo.path, REF, to_version="1.0.0")
    data = repo.read_release()
    assert data["spec"]["version"] == "1.0.0"
    assert data["spec"]["artifact"]["digest"] == digest_of("1")
    assert data["spec"]["rollout"]["steps"] == steps
    assert result.plan.mode == "restore" and result.plan.commit == first
    assert f"as set by commit {first}" in repo.git("log", "-1", "--format=%B")


def test_unknown_target_version_lists_the_known_ones(repo: GitRepo) -> None:
    repo.release("1.0.0", digest_of("1"))
    repo.release("2.0.0", digest_of("2"))
    with pytest.raises(ReleaseNotFound, match=r"versions: 2\.0\.0, 1\.0\.0"):
        rollback(repo.path, REF, to_version="0.9.0")


def test_first_version_cannot_be_rolled_back(repo: GitRepo) -> None:
    repo.release("1.0.0", digest_of("1"))
    with pytest.raises(GitOpsError, match="no earlier version"):
        rollback(repo.path, REF)


def test_rollback_of_a_rollback_brings_the_version_back(repo: GitRepo) -> None:
    repo.release("1.0.0", digest_of("1"))
    repo.release("2.0.0", digest_of("2"))
    rollback(repo.path, REF)
    rollback(repo.path, REF)
    assert version(repo) == "2.0.0"


def test_branch_and_push_to_a_remote(repo: GitRepo, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git.Repo.init(remote, bare=True)
    repo.git("remote", "add", "origin", str(remote))
    repo.release("1.0.0", digest_of("1"))
    repo.release("2.0.0", digest_of("2"))
    result = rollback(repo.path, REF, branch="rollback/detector-2", push=True)
    assert result.pushed and result.branch == "rollback/detector-2"
    pushed = git.Repo(remote).commit("rollback/detector-2").hexsha
    assert pushed == result.commit
