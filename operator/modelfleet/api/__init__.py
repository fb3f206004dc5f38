"""The Kubernetes-facing API of modelfleet: names, typed views of objects, status helpers.

``parse_release`` / ``parse_gateway`` turn API dicts into the immutable views of
:mod:`modelfleet.core` (raising :class:`~modelfleet.errors.ConfigError` naming the field; a
TrustPolicy is parsed, with its key material, by :func:`modelfleet.trust.parse_policy`);
``status_from_dict`` / ``status_to_dict`` (:mod:`modelfleet.api.status`) and ``status_patch``
(:mod:`modelfleet.api.patch`) are the one status parse, serialize and merge-patch path;
:mod:`modelfleet.api.statusview` is the documented ``modelfleet status`` view of a release and
its text rendering (used by the CLI and the drills' doc images). Imports only
:mod:`modelfleet.core`.
"""

from __future__ import annotations

from modelfleet.api.constants import (
    ACTION_ANNOTATION,
    ACTION_ID_ANNOTATION,
    API_VERSION,
    CONDITION_CONFLICT,
    CONDITION_DEGRADED,
    CONDITION_PROGRESSING,
    CONDITION_READY,
    CONDITION_VERIFIED,
    EDGEGATEWAY_KIND,
    EDGEGATEWAY_PLURAL,
    FIELD_MANAGER_CLI,
    FIELD_MANAGER_FLEET_API,
    FIELD_MANAGER_OPERATOR,
    FIELD_MANAGER_SYNC,
    GROUP,
    MODELRELEASE_KIND,
    MODELRELEASE_PLURAL,
    SOURCE_PATH_ANNOTATION,
    SOURCE_REPO_ANNOTATION,
    SOURCE_REVISION_ANNOTATION,
    TRUSTPOLICY_KIND,
    TRUSTPOLICY_PLURAL,
    VERSION,
)
from modelfleet.api.gateway import parse_gateway
from modelfleet.api.patch import merge_diff, status_changes, status_merge_patch, status_patch
from modelfleet.api.release import (
    object_name,
    parse_action,
    parse_release,
    parse_selector,
    parse_source,
    parse_spec,
)
from modelfleet.api.status import status_from_dict, status_to_dict
from modelfleet.core.conditions import is_true, release_conditions, set_condition, status_of
from modelfleet.core.times import format_time, parse_time

__all__ = [
    "ACTION_ANNOTATION",
    "ACTION_ID_ANNOTATION",
    "API_VERSION",
    "CONDITION_CONFLICT",
    "CONDITION_DEGRADED",
    "CONDITION_PROGRESSING",
    "CONDITION_READY",
    "CONDITION_VERIFIED",
    "EDGEGATEWAY_KIND",
    "EDGEGATEWAY_PLURAL",
    "FIELD_MANAGER_CLI",
    "FIELD_MANAGER_FLEET_API",
    "FIELD_MANAGER_OPERATOR",
    "FIELD_MANAGER_SYNC",
    "GROUP",
    "MODELRELEASE_KIND",
    "MODELRELEASE_PLURAL",
    "SOURCE_PATH_ANNOTATION",
    "SOURCE_REPO_ANNOTATION",
    "SOURCE_REVISION_ANNOTATION",
    "TRUSTPOLICY_KIND",
    "TRUSTPOLICY_PLURAL",
    "VERSION",
    "format_time",
    "is_true",
    "merge_diff",
    "object_name",
    "parse_action",
    "parse_gateway",
    "parse_release",
    "parse_selector",
    "parse_source",
    "parse_spec",
    "parse_time",
    "release_conditions",
    "set_condition",
    "status_changes",
    "status_from_dict",
    "status_merge_patch",
    "status_of",
    "status_patch",
    "status_to_dict",
]
