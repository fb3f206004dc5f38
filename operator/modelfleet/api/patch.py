"""The one JSON merge patch (RFC 7386) path for ModelRelease ``status``.

:func:`status_changes` names the top-level fields a :class:`~modelfleet.core.decision.Decision`
changed (compared on their serialized form, so two equal views never differ by spelling);
:func:`status_patch` diffs each of them against the status as the API server holds it. Objects
are patched key by key, lists replaced whole. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from modelfleet.api.status import status_to_dict
from modelfleet.core.decision import Decision
from modelfleet.core.types import ReleaseStatus


def merge_diff(old: Any, new: Any) -> Any:
    """The JSON merge-patch (RFC 7386) value taking ``old`` to ``new``.

    Objects are patched key by key (a key gone from ``new`` becomes ``None``: delete); anything
    else, lists included (``conditions``, ``cohorts``, ``history``), is replaced whole.
    """
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        return new
    out: dict[str, Any] = {}
    for key, value in new.items():
        if key not in old or old[key] != value:
            out[key] = merge_diff(old.get(key), value)
    for key in old:
        if key not in new:
            out[key] = None
    return out


def status_changes(decision: Decision) -> dict[str, Any]:
    """The top-level status fields ``decide`` changed, with their new values (``None``: gone).

    Compared on the serialized form of the status ``decide`` started from and the one it
    returns, so two equal views never differ by spelling. A status never written (the CRD's
    default is only ``observedGeneration: 0``) changes every field. Only the fields ``decide``
    owns are ever named. ``{}`` means nothing to write.
    """
    old = _serialized_previous(decision)
    new = status_to_dict(decision.status)
    return {
        key: new.get(key)
        for key in sorted(_OWNED)
        if old.get(key) != new.get(key) and (key in new or key in old)
    }


def status_merge_patch(
    stored: Mapping[str, Any] | None, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON merge patch for ``.status`` writing ``changes`` (top-level field → new value,
    ``None``: gone) over ``stored``, the status as held: each changed field diffed key by key
    (a sub-field the new value no longer has, a cleared ``rollout.healthySince``, is sent as
    ``null``); a field gone is deleted only if stored. ``{}`` means nothing to write."""
    stored = stored or {}
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if value is None:
            if key in stored:
                out[key] = None
        elif stored.get(key) != value:
            out[key] = merge_diff(stored.get(key), value)
    return out


def status_patch(decision: Decision, stored: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The merge patch that writes ``decision`` over ``stored`` (the status as the API server
    holds it; default: the status ``decide`` started from, serialized). ``{}``: no write."""
    if stored is None:
        stored = _serialized_previous(decision)
    return status_merge_patch(stored, status_changes(decision))


def _serialized_previous(decision: Decision) -> dict[str, Any]:
    # Never written (the CRD's default status is only ``observedGeneration: 0``): write all.
    before = decision.previous
    fresh = replace(before, observed_generation=None) == ReleaseStatus()
    return {} if fresh else status_to_dict(before)


#: Top-level status fields that ``decide`` owns (others, if any, are left alone by patches).
_OWNED = frozenset(
    {
        "observedGeneration",
        "phase",
        "reason",
        "message",
        "conditions",
        "stable",
        "target",
        "verification",
        "rollout",
        "source",
        "history",
        "checklist",
    }
)
