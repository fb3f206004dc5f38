"""Turning ``decide()``'s status changes into one JSON merge patch with a precondition.

``Decision.patch`` says which top-level status fields changed; the patch sent is computed
against the status *as stored* (not as parsed), each changed field diffed key by key: a JSON
merge patch (RFC 7386) merges objects, so every sub-field the new value no longer has (a cleared
``rollout.healthySince``) is set to ``null``; lists are replaced whole.
``metadata.resourceVersion`` makes the write conditional: if the object changed since it was
read, the API server answers 409 and the controller decides again on fresh data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def merge_diff(old: Any, new: Any) -> Any:
    """The merge-patch value taking ``old`` to ``new`` (``new`` itself unless both are objects)."""
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


def status_merge_patch(
    current: Mapping[str, Any] | None, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge patch for ``.status`` from the stored status and ``Decision.patch``."""
    current = current or {}
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if value is None:
            if key in current:
                out[key] = None
        elif current.get(key) != value:
            out[key] = merge_diff(current.get(key), value)
    return out


#: ``status.rollout.gates`` fields that are decisions (the rest are measured values).
_GATE_DECISION = ("result", "reason")


def _decisions(status: Mapping[str, Any] | None, keys: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        value = (status or {}).get(key)
        if key == "rollout" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k not in ("cohorts", "gates")}
            gates = (status or {}).get("rollout", {}).get("gates") or {}
            value["gates"] = {k: gates.get(k) for k in _GATE_DECISION}
        out[key] = value
    return out


def observation_only(current: Mapping[str, Any] | None, changed: Mapping[str, Any]) -> bool:
    """Whether ``changed`` (new values of top-level status fields) differs from the stored
    status only in measured values: cohort counts and gate figures, not the gate result or
    reason, nor any phase, step, timestamp, snapshot, condition or history."""
    return _decisions(current, changed) == _decisions(changed, changed)


def conditional(resource_version: str | None, status: Mapping[str, Any]) -> dict[str, Any]:
    """The whole merge-patch document: the status change, guarded by ``resourceVersion``."""
    doc: dict[str, Any] = {"status": dict(status)}
    if resource_version:
        doc["metadata"] = {"resourceVersion": resource_version}
    return doc


def newer(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """Of two copies of one object, the one with the higher ``resourceVersion`` (etcd revisions
    are integers in practice; when they are not comparable, ``a`` wins)."""
    if a is None or b is None:
        return a if b is None else b
    try:
        ra = int((a.get("metadata") or {}).get("resourceVersion") or 0)
        rb = int((b.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return a
    return b if rb > ra else a
