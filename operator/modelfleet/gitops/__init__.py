"""modelfleet.gitops: Git as the source of truth for model releases.

A release is a commit that changes ``releases/<namespace>/<name>.yaml``; a rollback is the revert
of the commit that set the current version. This package owns those Git operations, the
client-side schema check of release manifests, the lookup of the commit a live object came from,
and ``modelfleet sync`` (a built-in Git → cluster sync for users without Argo CD).

Public API::

    # release / rollback / history (CLI; real git via GitPython and the git CLI)
    create_release(repo_path, ReleaseRequest(ref, version, uri, ...)) -> ReleaseResult
    plan_rollback(repo, ref, to_version=None) -> RollbackPlan        # reads only
    rollback(repo_path, ref, to_version=None, branch=None, push=False) -> RollbackResult
    release_history(repo, ref, first_parent=False, allowed_signers=None) -> list[HistoryEntry]

    # the Git source of a live object (operator; pure, no kubernetes import)
    tracking_application(obj) -> ApplicationRef | None     # which Argo CD Application to fetch
    source_revision(obj, application=None) -> SourceRevision | None   # .to_status()

    # manifests
    crd_schema("ModelRelease").check(manifest) -> ValidationReport

    # sync (modelfleet.gitops.sync; imports kubernetes)
    SyncConfig(...); sync_once(config, applier) -> SyncResult; run_sync_loop(...)
"""

from __future__ import annotations

from modelfleet.api.source import (
    PATH_ANNOTATION,
    REPO_ANNOTATION,
    REVISION_ANNOTATION,
    TRACKING_ID_ANNOTATION,
    ApplicationRef,
    SourceRevision,
    parse_tracking_id,
    source_revision,
    tracking_application,
)
from modelfleet.gitops.errors import (
    DirtyWorkTree,
    GitCommandFailed,
    GitOpsError,
    ManifestInvalid,
    ReleaseNotFound,
    ReleaseRefused,
    RevertConflict,
    SyncFailed,
    SyncRefused,
    UntrustedCommit,
)
from modelfleet.gitops.history import CommitSignature, HistoryEntry, release_history
from modelfleet.gitops.manifest import Artifact, ReleaseRef, find_release_file
from modelfleet.gitops.release import ReleaseRequest, ReleaseResult, create_release
from modelfleet.gitops.rollback import RollbackPlan, RollbackResult, plan_rollback, rollback
from modelfleet.gitops.schema import CrdSchema, ValidationReport, crd_schema

__all__ = [
    "PATH_ANNOTATION",
    "REPO_ANNOTATION",
    "REVISION_ANNOTATION",
    "TRACKING_ID_ANNOTATION",
    "ApplicationRef",
    "Artifact",
    "CommitSignature",
    "CrdSchema",
    "DirtyWorkTree",
    "GitCommandFailed",
    "GitOpsError",
    "HistoryEntry",
    "ManifestInvalid",
    "ReleaseNotFound",
    "ReleaseRef",
    "ReleaseRefused",
    "ReleaseRequest",
    "ReleaseResult",
    "RevertConflict",
    "RollbackPlan",
    "RollbackResult",
    "SourceRevision",
    "SyncFailed",
    "SyncRefused",
    "UntrustedCommit",
    "ValidationReport",
    "crd_schema",
    "create_release",
    "find_release_file",
    "parse_tracking_id",
    "plan_rollback",
    "release_history",
    "rollback",
    "source_revision",
    "tracking_application",
]
