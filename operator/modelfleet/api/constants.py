"""Names of the modelfleet API: group, version, kinds, plurals, annotations, field managers.

Everything that spells a Kubernetes name lives here, so a rename is one edit.
"""

from __future__ import annotations

from modelfleet.core.conditions import (
    CONFLICT,
    DEGRADED,
    PROGRESSING,
    READY,
    RECONCILING,
    STALLED,
    VERIFIED,
)

GROUP = "modelfleet.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

MODELRELEASE_KIND = "ModelRelease"
MODELRELEASE_PLURAL = "modelreleases"
EDGEGATEWAY_KIND = "EdgeGateway"
EDGEGATEWAY_PLURAL = "edgegateways"
TRUSTPOLICY_KIND = "TrustPolicy"
TRUSTPOLICY_PLURAL = "trustpolicies"

#: One-shot manual action on a ModelRelease: ``promote``, ``abort`` or ``retry``.
ACTION_ANNOTATION = f"{GROUP}/action"
#: Unique id of the action; an action runs once per id (``status.rollout.lastActionId``).
ACTION_ID_ANNOTATION = f"{GROUP}/action-id"
#: Where the spec came from in Git (stamped by ``modelfleet release`` / ``modelfleet sync``);
#: copied to ``status.source`` and into ``status.history[].revision``.
SOURCE_REPO_ANNOTATION = f"{GROUP}/git-repo"
SOURCE_REVISION_ANNOTATION = f"{GROUP}/git-revision"
SOURCE_PATH_ANNOTATION = f"{GROUP}/git-path"

#: Server-side-apply / patch field managers, one per writer.
FIELD_MANAGER_OPERATOR = "modelfleet-operator"
FIELD_MANAGER_FLEET_API = "modelfleet-fleet-api"
FIELD_MANAGER_CLI = "modelfleet-cli"
FIELD_MANAGER_SYNC = "modelfleet-sync"

#: Condition types on ModelRelease (kstatus-style), defined with their meaning in core.
CONDITION_READY = READY
CONDITION_VERIFIED = VERIFIED
CONDITION_PROGRESSING = PROGRESSING
CONDITION_DEGRADED = DEGRADED
CONDITION_CONFLICT = CONFLICT
CONDITION_RECONCILING = RECONCILING
CONDITION_STALLED = STALLED
