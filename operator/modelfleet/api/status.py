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

from collections.abc import Mapping
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


# --------------------------------------------------------------------------- to dict


def verification_to_dict(v: Verification) -> dict[str, Any]:
    """``status.verification`` (and ``stable/target.verification``)."""
    provenance = None
    if v.provenance is not None:
        p = v.provenance
        provenance = _drop_none(
            {"predicateType": p.predicate_type, "builder": p.builder, "repo": p.repo, "ref": p.ref}
        )
    return _drop_none(
        {
            "verified": v.verified,
            "digest": v.digest,
            "modelDigest": v.model_digest,
            "authority": v.authority,
            "signer": v.signer,
            "issuer": v.issuer,
            "keyId": v.key_id,
            "tlogIndex": v.tlog_index,
            "integratedTime": v.integrated_time,
            "provenance": provenance,
            "at": _time(v.at),
            "reason": v.reason or None,
            "generation": v.generation,
        }
    )


def snapshot_to_dict(s: VersionSnapshot) -> dict[str, Any]:
    """``status.stable`` / ``status.target``."""
    return _drop_none(
        {
            "version": s.version,
            "digest": s.digest,
            "uri": s.uri,
            "signature": s.signature,
            "attestations": list(s.attestations) if s.attestations else None,
            "since": _time(s.since),
            "verification": None
            if s.verification is None
            else verification_to_dict(s.verification),
            "revoked": True if s.revoked else None,
        }
    )


def _rollout_to_dict(r: RolloutStatus) -> dict[str, Any]:
    gates = None
    if r.gates is not None:
        g = r.gates
        gates = _drop_none(
            {
                "result": g.result.value,
                "reason": g.reason,
                "failedGateways": g.failed_gateways,
                "errorRate": g.error_rate,
                "latencyP95Ms": g.latency_p95_ms,
                "driftScore": g.drift_score,
                "reportingRatio": g.reporting_ratio,
                "requests": g.requests,
                "evaluatedAt": _time(g.evaluated_at),
            }
        )
    return _drop_none(
        {
            "step": r.step,
            "stepName": r.step_name,
            "stepStartedAt": _time(r.step_started_at),
            "convergedAt": _time(r.converged_at),
            "healthySince": _time(r.healthy_since),
            "inconclusiveSince": _time(r.inconclusive_since),
            "lastActionId": r.last_action_id,
            "cohorts": [
                {
                    "name": c.name,
                    "assigned": c.assigned,
                    "active": c.active,
                    "failed": c.failed,
                    "reporting": c.reporting,
                }
                for c in r.cohorts
            ],
            "gates": gates,
        }
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
    return _drop_none(
        {
            "observedGeneration": status.observed_generation,
            "phase": status.phase.value,
            "reason": status.reason,
            "message": status.message,
            "conditions": [
                _drop_none(
                    {
                        "type": c.type,
                        "status": c.status,
                        "reason": c.reason or None,
                        "message": c.message or None,
                        "observedGeneration": c.observed_generation,
                        "lastTransitionTime": _time(c.last_transition_time),
                    }
                )
                for c in status.conditions
            ],
            "stable": None if status.stable is None else snapshot_to_dict(status.stable),
            "target": None if status.target is None else snapshot_to_dict(status.target),
            "verification": (
                None if status.verification is None else verification_to_dict(status.verification)
            ),
            "rollout": _rollout_to_dict(status.rollout),
            "source": (
                None
                if status.source is None
                else _drop_none(
                    {
                        "repoURL": status.source.repo_url,
                        "revision": status.source.revision,
                        "path": status.source.path,
                    }
                )
            ),
            "checklist": None if status.checklist is None else _checklist_to_dict(status.checklist),
            "history": [
                _drop_none(
                    {
                        "version": h.version,
                        "digest": h.digest,
                        "outcome": h.outcome,
                        "revision": h.revision,
                        "startedAt": _time(h.started_at),
                        "finishedAt": _time(h.finished_at),
                        "reason": h.reason,
                        "modelDigest": h.model_digest,
                    }
                )
                for h in status.history
            ],
        }
    )


# --------------------------------------------------------------------------- from dict


def _verification(n: Node | None) -> Verification | None:
    if n is None:
        return None
    p = n.node("provenance")
    provenance = None
    if p is not None:
        provenance = Provenance(
            predicate_type=p.string("predicateType"),
            builder=p.string("builder"),
            repo=p.string("repo"),
            ref=p.string("ref"),
        )
    return Verification(
        verified=n.boolean("verified"),
        digest=n.string("digest") or "",
        reason=n.string("reason") or "",
        model_digest=n.string("modelDigest"),
        authority=n.string("authority"),
        signer=n.string("signer"),
        issuer=n.string("issuer"),
        key_id=n.string("keyId"),
        tlog_index=n.integer("tlogIndex"),
        integrated_time=n.string("integratedTime"),
        provenance=provenance,
        at=n.timestamp("at"),
        generation=n.integer("generation"),
    )


def _snapshot(n: Node | None) -> VersionSnapshot | None:
    if n is None or not n.string("digest"):
        return None
    return VersionSnapshot(
        version=n.string("version") or "",
        digest=n.required_string("digest"),
        uri=n.string("uri") or "",
        signature=n.string("signature"),
        attestations=n.strings("attestations"),
        since=n.timestamp("since"),
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
        gates = GateStatus(
            result=result,
            reason=g.string("reason") or "",
            failed_gateways=g.integer("failedGateways") or 0,
            error_rate=g.number("errorRate"),
            latency_p95_ms=g.number("latencyP95Ms"),
            drift_score=g.number("driftScore"),
            reporting_ratio=g.number("reportingRatio"),
            requests=g.integer("requests") or 0,
            evaluated_at=g.timestamp("evaluatedAt"),
        )
    return RolloutStatus(
        step=n.integer("step", minimum=0) or 0,
        step_name=n.string("stepName"),
        step_started_at=n.timestamp("stepStartedAt"),
        converged_at=n.timestamp("convergedAt"),
        healthy_since=n.timestamp("healthySince"),
        inconclusive_since=n.timestamp("inconclusiveSince"),
        last_action_id=n.string("lastActionId"),
        cohorts=tuple(
            CohortStatus(
                name=c.string("name") or "",
                assigned=c.integer("assigned") or 0,
                active=c.integer("active") or 0,
                failed=c.integer("failed") or 0,
                reporting=c.integer("reporting") or 0,
            )
            for c in n.nodes("cohorts")
        ),
        gates=gates,
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
        observed_generation=root.integer("observedGeneration"),
        reason=root.string("reason"),
        message=root.string("message"),
        conditions=tuple(
            Condition(
                type=c.required_string("type"),
                status=c.string("status") or "Unknown",
                reason=c.string("reason") or "",
                message=c.string("message") or "",
                observed_generation=c.integer("observedGeneration"),
                last_transition_time=c.timestamp("lastTransitionTime"),
            )
            for c in root.nodes("conditions")
        ),
        stable=_snapshot(root.node("stable")),
        target=_snapshot(root.node("target")),
        verification=_verification(root.node("verification")),
        rollout=_rollout(root.node("rollout")),
        source=(
            None
            if src is None
            else Source(
                repo_url=src.string("repoURL"),
                revision=src.string("revision"),
                path=src.string("path"),
            )
        ),
        checklist=_checklist(root.node("checklist")),
        history=tuple(
            HistoryEntry(
                version=h.string("version") or "",
                digest=h.string("digest") or "",
                outcome=h.string("outcome") or "",
                revision=h.string("revision"),
                started_at=h.timestamp("startedAt"),
                finished_at=h.timestamp("finishedAt"),
                reason=h.string("reason"),
                model_digest=h.string("modelDigest"),
            )
            for h in root.nodes("history")
        ),
    )
