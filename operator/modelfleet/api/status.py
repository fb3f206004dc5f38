"""ModelRelease ``status``: the one parse path and the one serialize path.

``decide()`` returns a typed :class:`~modelfleet.core.types.ReleaseStatus`;
:func:`status_to_dict` spells it as the CRD schema describes
(:func:`modelfleet.api.patch.status_patch` is the merge patch that writes it). The operator reads
the persisted status back with :func:`status_from_dict`, so a restarted operator resumes from
exactly what was written. Reads go through :data:`~modelfleet.api.statusfields.STATUS_FIELDS`,
the declared list of status paths the schema-drift test checks against
``crds/modelrelease.yaml``. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from modelfleet.api.statusfields import STATUS_FIELDS
from modelfleet.core.checklist import ChecklistItem, ChecklistStatus, Unmet
from modelfleet.core.doc import Node
from modelfleet.core.phases import Phase
from modelfleet.core.times import format_time
from modelfleet.core.types import (
    CohortStatus,
    Condition,
    GateResult,
    GateStatus,
    HistoryEntry,
    ReleaseStatus,
    RolloutStatus,
    Source,
)
from modelfleet.core.versions import Provenance, Verification, VersionSnapshot


def _drop_none(items: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in items.items() if v is not None}


def _time(value: Any) -> str | None:
    return None if value is None else format_time(value)


# --------------------------------------------------------------------------- field tables

#: How a scalar field kind is read from a :class:`Node` (``text``/``note``/``count`` default to
#: ``""``/``""``/``0``, the others to ``None``).
_READ: dict[str, Callable[[Node, str], Any]] = {
    "str": lambda n, k: n.string(k),
    "text": lambda n, k: n.string(k) or "",
    "note": lambda n, k: n.string(k) or "",
    "int": lambda n, k: n.integer(k),
    "count": lambda n, k: n.integer(k) or 0,
    "num": lambda n, k: n.number(k),
    "time": lambda n, k: n.timestamp(k),
    "bool": lambda n, k: n.boolean(k),
}
#: How a kind is written (absent: as it is); ``None`` is then left out. A ``note`` is left out
#: when empty too.
_WRITE: dict[str, Callable[[Any], Any]] = {"note": lambda v: v or None, "time": _time}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


class _Fields:
    """One record's scalar fields, declared once as ``"camelKey:kind"`` (``"key=attr:kind"``
    where the attribute is not the key in snake_case), read and written from the same table."""

    __slots__ = ("fields",)

    def __init__(self, *specs: str) -> None:
        out = []
        for spec in specs:
            names, kind = spec.rsplit(":", 1)
            key, _, attr = names.partition("=")
            out.append((key, attr or _snake(key), kind))
        self.fields: tuple[tuple[str, str, str], ...] = tuple(out)

    def read(self, n: Node) -> dict[str, Any]:
        """Constructor keyword arguments from the node."""
        return {attr: _READ[kind](n, key) for key, attr, kind in self.fields}

    def write(self, obj: object, **extra: Any) -> dict[str, Any]:
        """The dict the CRD schema spells (plus ``extra``), absent values left out."""
        out = {key: _WRITE.get(kind, _same)(getattr(obj, attr)) for key, attr, kind in self.fields}
        return _drop_none({**out, **extra})


def _same(value: Any) -> Any:
    return value


_PROVENANCE = _Fields("predicateType:str", "builder:str", "repo:str", "ref:str")
_VERIFICATION = _Fields(
    "verified:bool", "digest:text", "modelDigest:str", "authority:str", "signer:str",
    "issuer:str", "keyId:str", "tlogIndex:int", "integratedTime:str", "at:time", "reason:note",
    "generation:int",
)  # fmt: skip
_SNAPSHOT = _Fields("version:text", "digest:text", "uri:text", "signature:str", "since:time")
_GATES = _Fields(
    "reason:text", "failedGateways:count", "errorRate:num", "latencyP95Ms:num", "driftScore:num",
    "reportingRatio:num", "requests:count", "evaluatedAt:time",
)  # fmt: skip
_COHORT = _Fields("name:text", "assigned:count", "active:count", "failed:count", "reporting:count")
_ROLLOUT = _Fields(
    "stepName:str", "stepStartedAt:time", "convergedAt:time", "healthySince:time",
    "inconclusiveSince:time", "lastActionId:str",
)  # fmt: skip
_CONDITION = _Fields(
    "type:str", "status:str", "reason:note", "message:note", "observedGeneration:int",
    "lastTransitionTime:time",
)  # fmt: skip
_SOURCE = _Fields("repoURL=repo_url:str", "revision:str", "path:str")
_HISTORY = _Fields(
    "version:text", "digest:text", "outcome:text", "revision:str", "startedAt:time",
    "finishedAt:time", "reason:str", "modelDigest:str",
)  # fmt: skip
_RELEASE = _Fields("observedGeneration:int", "reason:str", "message:str")


# --------------------------------------------------------------------------- to dict


def verification_to_dict(v: Verification) -> dict[str, Any]:
    """``status.verification`` (and ``stable/target.verification``)."""
    p = v.provenance
    return _VERIFICATION.write(v, provenance=None if p is None else _PROVENANCE.write(p))


def snapshot_to_dict(s: VersionSnapshot) -> dict[str, Any]:
    """``status.stable`` / ``status.target``."""
    v = s.verification
    return _SNAPSHOT.write(
        s,
        attestations=list(s.attestations) if s.attestations else None,
        verification=None if v is None else verification_to_dict(v),
        revoked=True if s.revoked else None,
    )


def _rollout_to_dict(r: RolloutStatus) -> dict[str, Any]:
    g = r.gates
    return _ROLLOUT.write(
        r,
        step=r.step,
        cohorts=[_COHORT.write(c) for c in r.cohorts],
        gates=None if g is None else _GATES.write(g, result=g.result.value),
    )


def _checklist_to_dict(c: ChecklistStatus) -> dict[str, Any]:
    return _drop_none(
        {
            "required": [i.value for i in c.required],
            "unmet": [{"item": u.item.value, "reason": u.reason} for u in c.unmet],
            # For the printer column: kubectl's columns show one value per path, not a list.
            "unmetItems": ",".join(u.item.value for u in c.unmet) or None,
        }
    )


def status_to_dict(status: ReleaseStatus) -> dict[str, Any]:
    """The whole status as the CRD schema spells it (absent values are omitted)."""
    st = status
    return _RELEASE.write(
        st,
        phase=st.phase.value,
        conditions=[_CONDITION.write(c) for c in st.conditions],
        stable=None if st.stable is None else snapshot_to_dict(st.stable),
        target=None if st.target is None else snapshot_to_dict(st.target),
        verification=None if st.verification is None else verification_to_dict(st.verification),
        rollout=_rollout_to_dict(st.rollout),
        source=None if st.source is None else _SOURCE.write(st.source),
        checklist=None if st.checklist is None else _checklist_to_dict(st.checklist),
        history=[_HISTORY.write(h) for h in st.history],
    )


# --------------------------------------------------------------------------- from dict


def _verification(n: Node | None) -> Verification | None:
    if n is None:
        return None
    p = n.node("provenance")
    provenance = None if p is None else Provenance(**_PROVENANCE.read(p))
    return Verification(**_VERIFICATION.read(n), provenance=provenance)


def _snapshot(n: Node | None) -> VersionSnapshot | None:
    if n is None or not n.string("digest"):
        return None
    return VersionSnapshot(
        **_SNAPSHOT.read(n),
        attestations=n.strings("attestations"),
        verification=_verification(n.node("verification")),
        revoked=n.boolean("revoked"),
    )


def _rollout(n: Node | None) -> RolloutStatus:
    if n is None:
        return RolloutStatus()
    g = n.node("gates")
    gates = None
    result_text = None if g is None else g.string("result")
    if g is not None and result_text:
        try:
            result = GateResult(result_text)
        except ValueError:
            raise g.error("result", f"unknown gate result {result_text!r}") from None
        gates = GateStatus(result=result, **_GATES.read(g))
    return RolloutStatus(
        step=n.integer("step", minimum=0) or 0,
        cohorts=tuple(CohortStatus(**_COHORT.read(c)) for c in n.nodes("cohorts")),
        gates=gates,
        **_ROLLOUT.read(n),
    )


def _item(n: Node, key: str, text: str | None) -> ChecklistItem:
    try:
        return ChecklistItem(text or "")
    except ValueError:
        raise n.error(key, f"unknown release checklist item {text!r}") from None


def _checklist(n: Node | None) -> ChecklistStatus | None:
    if n is None:
        return None
    return ChecklistStatus(
        required=tuple(_item(n, "required", t) for t in n.strings("required")),
        unmet=tuple(
            Unmet(_item(u, "item", u.string("item")), u.string("reason") or "")
            for u in n.nodes("unmet")
        ),
    )


def _condition(n: Node) -> Condition:
    fields = _CONDITION.read(n)
    fields["type"] = n.required_string("type")
    fields["status"] = fields["status"] or "Unknown"
    return Condition(**fields)


def status_from_dict(
    data: Mapping[str, Any] | None, *, where: str = "ModelRelease"
) -> ReleaseStatus:
    """Parse a persisted ``status`` (``None`` or ``{}``: a release never reconciled)."""
    if not data:
        return ReleaseStatus()
    root = Node(data, registry=STATUS_FIELDS, where=where, path="status", schema="status")
    phase_text = root.string("phase")
    try:
        phase = Phase(phase_text) if phase_text else Phase.PENDING
    except ValueError:
        raise root.error("phase", f"unknown phase {phase_text!r}") from None
    src = root.node("source")
    return ReleaseStatus(
        phase=phase,
        conditions=tuple(_condition(c) for c in root.nodes("conditions")),
        stable=_snapshot(root.node("stable")),
        target=_snapshot(root.node("target")),
        verification=_verification(root.node("verification")),
        rollout=_rollout(root.node("rollout")),
        source=None if src is None else Source(**_SOURCE.read(src)),
        checklist=_checklist(root.node("checklist")),
        history=tuple(HistoryEntry(**_HISTORY.read(h)) for h in root.nodes("history")),
        **_RELEASE.read(root),
    )
