"""Rolling a release back in Git: ``git revert`` of the commit that set its current version.

Which commit: the branch's own line is walked (``--first-parent``) to find ``F``, the commit with
which the current version landed. When ``F`` is an ordinary commit it is reverted. When ``F`` is a
merge, the non-merge commit on the merged side that made exactly that change (same state before
and after for this release as the merge's first parent and the merge) is reverted instead, so
nothing else the merged branch brought is undone; if there is none (the merge resolved a
conflict to a new value), the merge itself is reverted with mainline 1, i.e. back to what this
branch had before, and the other paths it touches are reported.

``--to VERSION``: when ``VERSION`` is the one before ``F``, that is the same revert. Otherwise the
commit that set ``VERSION`` is found and its ``spec.version`` and ``spec.artifact`` are restored
into the current manifest (other fields, such as gates tuned since, stay), in a new commit whose
message names that commit.

Safety: refuses on a dirty tree or an operation in progress; a conflicting revert is aborted
(``git revert --abort``) and a branch created for it is deleted, leaving the repository exactly
as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import git
import yaml

from modelfleet.gitops import manifest
from modelfleet.gitops.errors import GitCommandFailed, GitOpsError, ReleaseNotFound, RevertConflict
from modelfleet.gitops.history import HistoryEntry, release_history
from modelfleet.gitops.manifest import ReleaseRef
from modelfleet.gitops.repo import current_branch, ensure_clean, read_blob, run, top_level

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RollbackPlan:
    """What a rollback will do, decided before anything is written."""

    ref: ReleaseRef
    mode: str  # "revert" | "restore"
    current_version: str | None
    target_version: str | None
    target_digest: str | None
    commit: str  # the commit reverted, or the one whose version is restored
    subject: str
    mainline: int | None = None  # set when reverting a merge

    def describe(self) -> str:
        what = (
            f"revert {self.commit[:12]} ({self.subject})"
            + (f" with mainline {self.mainline}" if self.mainline else "")
            if self.mode == "revert"
            else f"restore the version set by {self.commit[:12]} ({self.subject})"
        )
        return f"{self.ref}: {self.current_version} -> {self.target_version}: {what}"


@dataclass(frozen=True)
class RollbackResult:
    plan: RollbackPlan
    commit: str  # the new commit
    branch: str | None
    version: str | None  # the version now in the manifest
    digest: str | None
    also_changed: tuple[str, ...]  # other paths the new commit changes
    pushed: bool


def _state(repo: git.Repo, sha: str, ref: ReleaseRef) -> tuple[str | None, str | None]:
    text = read_blob(repo.commit(sha), ref.path)
    if text is None:
        return None, None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None, None
    _, version, digest = manifest.release_summary(data if isinstance(data, dict) else {})
    return version, digest


def _side_commit(repo: git.Repo, merge: HistoryEntry, ref: ReleaseRef) -> str | None:
    """The non-merge commit the merge brought in that made exactly the merge's change."""
    before = (merge.previous_version, merge.previous_digest)
    after = (merge.version, merge.digest)
    first, *others = merge.parents
    for other in others:
        out = run(
            repo, "log", "--no-merges", "--format=%H", f"{first}..{other}", "--", str(ref.path)
        )
        for sha in out.split():
            commit = repo.commit(sha)
            parent = commit.parents[0].hexsha if commit.parents else None
            if _state(repo, sha, ref) == after and (
                parent is not None and _state(repo, parent, ref) == before
            ):
                return sha
    return None


def plan_rollback(repo: git.Repo, ref: ReleaseRef, to_version: str | None = None) -> RollbackPlan:
    """Decide which commit to revert (or which version to restore); writes nothing."""
    line = release_history(repo, ref, first_parent=True)
    landed = line[0]
    current = landed.version
    if landed.change == "removed":
        raise GitOpsError(f"{ref} was removed by {landed.short}; restore the file instead")
    if to_version is not None and to_version == current:
        raise GitOpsError(f"{ref} is already at version {to_version}")
    if to_version is None or to_version == landed.previous_version:
        if landed.change == "added":
            raise GitOpsError(
                f"{landed.short} created {ref}: reverting it would delete the release; "
                "there is no earlier version to roll back to"
            )
        commit, mainline = landed.commit, None
        subject = landed.subject
        if landed.is_merge:
            side = _side_commit(repo, landed, ref)
            if side is not None:
                commit, subject = side, str(repo.commit(side).summary)
            else:
                mainline = 1
        return RollbackPlan(
            ref,
            "revert",
            current,
            landed.previous_version,
            landed.previous_digest,
            commit,
            str(subject),
            mainline,
        )
    for source in (line, release_history(repo, ref)):
        for entry in source:
            if entry.version == to_version and entry.change != "removed":
                return RollbackPlan(
                    ref, "restore", current, to_version, entry.digest, entry.commit, entry.subject
                )
    known = ", ".join(dict.fromkeys(e.version for e in line if e.version)) or "none"
    raise ReleaseNotFound(f"{ref} never had version {to_version} (versions: {known})")


def _trailers(ref: ReleaseRef, version: str | None, digest: str | None) -> str:
    return f"Release: {ref}\nVersion: {version}\nDigest: {digest}\n"


def _apply_revert(repo: git.Repo, plan: RollbackPlan) -> str:
    args = ["revert", "--no-commit"]
    if plan.mainline:
        args += ["-m", str(plan.mainline)]
    try:
        run(repo, *args, plan.commit)
    except GitCommandFailed as exc:
        conflicted = run(repo, "diff", "--name-only", "--diff-filter=U").split()
        if (Path(repo.git_dir) / "REVERT_HEAD").exists() or (
            Path(repo.git_dir) / "sequencer"
        ).exists():
            run(repo, "revert", "--abort")
        where = ", ".join(conflicted) or exc.diagnostics()
        raise RevertConflict(
            f"reverting {plan.commit[:12]} conflicts in {where}; nothing was changed. "
            f"Later commits touched the same lines: use --to {plan.target_version} "
            "to restore that version's artifact instead, or revert by hand"
        ) from None
    reverse = f", reversing changes made to {repo.commit(plan.commit).parents[0].hexsha}"
    return (
        f'Revert "{plan.subject}"\n\n'
        f"Roll back {plan.ref} from {plan.current_version} to {plan.target_version}.\n\n"
        f"This reverts commit {plan.commit}{reverse if plan.mainline else ''}.\n\n"
    )


def _apply_restore(repo: git.Repo, plan: RollbackPlan) -> str:
    root = top_level(repo)
    path = root / plan.ref.path
    old = read_blob(repo.commit(plan.commit), plan.ref.path)
    if old is None:
        raise ReleaseNotFound(f"{plan.ref.path} is missing at {plan.commit[:12]}")
    spec = manifest.validate_text(old, f"{plan.ref.path} at {plan.commit[:12]}")["spec"]
    set_to = manifest.Artifact.from_manifest(spec["artifact"])
    where = str(plan.ref.path)
    text = manifest.with_version(path.read_text("utf-8"), where, str(spec["version"]), set_to)
    manifest.validate_text(text, where)
    path.write_text(text, "utf-8")
    run(repo, "add", "--", str(plan.ref.path))
    return (
        f"Roll back {plan.ref} to {plan.target_version}\n\n"
        f"Restores version {plan.target_version} ({plan.target_digest}) as set by commit "
        f"{plan.commit} ({plan.subject}), replacing {plan.current_version}.\n\n"
    )


def rollback(
    repo_path: Path,
    ref: ReleaseRef,
    *,
    to_version: str | None = None,
    branch: str | None = None,
    push: bool = False,
    remote: str = "origin",
) -> RollbackResult:
    """Commit the rollback of ``ref`` on the current branch (or a new ``branch`` from it)."""
    repo = git.Repo(repo_path, search_parent_directories=True)
    ensure_clean(repo)
    plan = plan_rollback(repo, ref, to_version)
    original = current_branch(repo) or repo.head.commit.hexsha
    if branch:
        run(repo, "checkout", "-q", "-b", branch)
    try:
        message = _apply_revert(repo, plan) if plan.mode == "revert" else _apply_restore(repo, plan)
        text = (
            (top_level(repo) / ref.path).read_text("utf-8")
            if (top_level(repo) / ref.path).exists()
            else None
        )
        version = digest = None
        if text is not None:
            _, version, digest = manifest.release_summary(
                manifest.validate_text(text, str(ref.path))
            )
        staged = run(repo, "diff", "--cached", "--name-only").split()
        if not staged:
            raise GitOpsError(f"rolling back {ref} changes nothing: {plan.describe()}")
        run(repo, "commit", "-q", "-m", message + _trailers(ref, version, digest))
    except BaseException:
        _restore(repo, original, branch)
        raise
    also = tuple(p for p in staged if p != str(ref.path))
    sha = repo.head.commit.hexsha
    log.info("release %s rolled back to %s in %s", ref, version, sha[:12])
    pushed = False
    if push:
        run(repo, "push", remote, f"HEAD:refs/heads/{branch or current_branch(repo)}")
        pushed = True
    return RollbackResult(plan, sha, branch, version, digest, also, pushed)


def _restore(repo: git.Repo, original: str, branch: str | None) -> None:
    """Put the repository back as it was before a failed rollback."""
    git_dir = Path(repo.git_dir)
    if (git_dir / "REVERT_HEAD").exists() or (git_dir / "sequencer").exists():
        run(repo, "revert", "--abort")
    run(repo, "reset", "-q", "--hard", "HEAD")
    if branch:
        run(repo, "checkout", "-q", original)
        run(repo, "branch", "-q", "-D", branch)
