"""How the operator sends a status write: guarded, and only when it says something.

The merge patch itself is :func:`modelfleet.api.patch.status_patch` (the one patch path);
this module adds ``metadata.resourceVersion``, which makes the write conditional (if the object
changed since it was read, the API server answers 409 and the controller decides again on fresh
data), tells a change of measured values from a decision, and picks the newer of two copies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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
