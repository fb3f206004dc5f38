"""Errors of the Git side: releases refused, rollbacks that cannot proceed, syncs that fail.

Every error names the release or repository it is about and says what to do next; the CLI prints
``diagnostics()`` as one line.
"""

from __future__ import annotations

from collections.abc import Sequence

from modelfleet.errors import ModelfleetError


class GitOpsError(ModelfleetError):
    """Base class of every error of :mod:`modelfleet.gitops`."""


class ManifestInvalid(GitOpsError):
    """A manifest does not satisfy the CRD schema (types, required, enums, patterns, CEL rules)."""

    def __init__(self, where: str, problems: Sequence[str]) -> None:
        self.where = where
        self.problems = tuple(problems)
        shown = "; ".join(self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"{where} is not a valid ModelRelease: {shown}{more}")


class ReleaseRefused(GitOpsError):
    """A release was not committed: the artifact failed verification or the inputs disagree."""


class ReleaseNotFound(GitOpsError):
    """No manifest (or no commit) for the named release."""


class DirtyWorkTree(GitOpsError):
    """The working tree has uncommitted changes or an operation (merge, revert) in progress."""


class RevertConflict(GitOpsError):
    """``git revert`` hit conflicts; the repository was restored to where it was."""


class UntrustedCommit(GitOpsError):
    """A commit to be synced is unsigned, badly signed, or signed by a key that is not allowed."""


class SyncFailed(GitOpsError):
    """The Git sync could not fetch, parse or apply the manifests."""


class SyncRefused(SyncFailed):
    """A commit asks for something the sync may not do (a kind or namespace outside the
    allow-list, an object the sync did not create); nothing of it was applied."""


class GitCommandFailed(GitOpsError):
    """A git command failed; the message carries git's own first error line."""
