"""The Git source of a live object, as :mod:`modelfleet.gitops` names it.

The rules live in :mod:`modelfleet.api.source` (git-free, so the operator can use them without
GitPython); this module only re-exports them for the GitOps side.
"""

from __future__ import annotations

from modelfleet.api.source import (
    INSTANCE_LABEL,
    PATH_ANNOTATION,
    REPO_ANNOTATION,
    REVISION_ANNOTATION,
    TRACKING_ID_ANNOTATION,
    ApplicationRef,
    SourceRevision,
    TrackingId,
    parse_tracking_id,
    source_revision,
    tracking_application,
)

__all__ = [
    "INSTANCE_LABEL",
    "PATH_ANNOTATION",
    "REPO_ANNOTATION",
    "REVISION_ANNOTATION",
    "TRACKING_ID_ANNOTATION",
    "ApplicationRef",
    "SourceRevision",
    "TrackingId",
    "parse_tracking_id",
    "source_revision",
    "tracking_application",
]
