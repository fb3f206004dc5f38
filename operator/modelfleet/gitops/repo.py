"""Thin helpers over GitPython: open a repository, run git, read blobs, check the tree is clean.

Commits are made by the git CLI (through ``repo.git``), never by writing objects directly, so the
user's configuration applies: identity, hooks and ``commit.gpgsign`` (signed releases).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import git

from modelfleet.gitops.errors import DirtyWorkTree, GitCommandFailed, GitOpsError

#: Files in the git dir that mean an operation is half-done.
_IN_PROGRESS = {
    "MERGE_HEAD": "a merge",
    "REVERT_HEAD": "a revert",
    "CHERRY_PICK_HEAD": "a cherry-pick",
    "rebase-merge": "a rebase",
    "rebase-apply": "a rebase or am",
}


def open_repo(path: Path) -> git.Repo:
    """The repository containing ``path`` (its top level is ``repo.working_tree_dir``)."""
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitOpsError(f"{path} is not inside a git repository") from None


def top_level(repo: git.Repo) -> Path:
    if repo.working_tree_dir is None:
        raise GitOpsError(f"{repo.git_dir} is a bare repository; use a clone with a work tree")
    return Path(repo.working_tree_dir)


def run(repo: git.Repo, *args: str, **kwargs: object) -> str:
    """``git <args>`` in ``repo``; a failure becomes :class:`GitCommandFailed` with git's words."""
    try:
        out: str = repo.git.execute(["git", *args], **kwargs)  # type: ignore[call-overload]
    except git.GitCommandError as exc:
        raise GitCommandFailed(f"git {args[0]} failed: {first_error_line(exc)}") from None
    return out


def first_error_line(exc: git.GitCommandError) -> str:
    text = exc.stderr if isinstance(exc.stderr, str) else str(exc.stderr or "")
    for raw in text.splitlines():
        line = raw.strip().removeprefix("stderr: ").strip("'").strip()
        if line:
            return line
    return f"exit status {exc.status}"


def ensure_clean(repo: git.Repo) -> None:
    """Refuse when tracked files are modified or an operation is in progress."""
    git_dir = Path(repo.git_dir)
    for name, what in _IN_PROGRESS.items():
        if (git_dir / name).exists():
            raise DirtyWorkTree(f"{what} is in progress in {top_level(repo)}; finish or abort it")
    if repo.is_dirty(index=True, working_tree=True, untracked_files=False):
        changed = sorted({str(d.a_path) for d in repo.index.diff(None)} | _staged(repo))
        shown = ", ".join(str(c) for c in changed[:5]) or "the index"
        raise DirtyWorkTree(
            f"uncommitted changes in {top_level(repo)} ({shown}); commit or stash them first"
        )


def _staged(repo: git.Repo) -> set[str]:
    try:
        return {str(d.a_path) for d in repo.index.diff("HEAD")}
    except (git.BadName, ValueError):  # no HEAD yet
        return set()


def read_blob(commit: git.Commit, path: PurePosixPath | str) -> str | None:
    """The text of ``path`` at ``commit``, or ``None`` when it does not exist there."""
    try:
        blob = commit.tree / str(path)
    except KeyError:
        return None
    data: bytes = blob.data_stream.read()
    return data.decode("utf-8", errors="replace")


def current_branch(repo: git.Repo) -> str | None:
    """The checked-out branch, or ``None`` on a detached HEAD."""
    try:
        return str(repo.active_branch.name)
    except TypeError:
        return None
