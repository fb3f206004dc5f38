"""The ModelRelease ``status`` field paths that modelfleet reads and writes, declared once.

``modelfleet.api.status`` reads status only through these paths (a :class:`~modelfleet.core.doc.
Node` refuses any other), and ``tests/unit/api/test_schema_drift.py`` checks each one, and every
path the serializer writes, against ``crds/modelrelease.yaml``: a status field missing from the
schema would be dropped silently by the API server.
"""

from __future__ import annotations

from modelfleet.core.doc import FieldRegistry

_VERIFICATION = (
    "verified",
    "digest",
    "modelDigest",
    "authority",
    "signer",
    "issuer",
    "keyId",
    "tlogIndex",
    "integratedTime",
    "provenance",
    "provenance.predicateType",
    "provenance.builder",
    "provenance.repo",
    "provenance.ref",
    "at",
    "reason",
    "generation",
)
_SNAPSHOT = (
    "version",
    "digest",
    "uri",
    "signature",
    "attestations",
    "since",
    "verification",
    "revoked",
)

#: Every ``status`` path this module reads or writes (``[]`` marks array items).
STATUS_FIELDS = FieldRegistry(
    "ModelRelease.status",
    [
        "status",
        "status.observedGeneration",
        "status.phase",
        "status.reason",
        "status.message",
        "status.conditions",
        *(
            f"status.conditions[].{k}"
            for k in (
                "type",
                "status",
                "reason",
                "message",
                "observedGeneration",
                "lastTransitionTime",
            )
        ),
        "status.stable",
        "status.target",
        *(f"status.{s}.{k}" for s in ("stable", "target") for k in _SNAPSHOT),
        *(f"status.{s}.verification.{k}" for s in ("stable", "target") for k in _VERIFICATION),
        "status.verification",
        *(f"status.verification.{k}" for k in _VERIFICATION),
        "status.rollout",
        *(
            f"status.rollout.{k}"
            for k in (
                "step",
                "stepName",
                "stepStartedAt",
                "convergedAt",
                "healthySince",
                "inconclusiveSince",
                "lastActionId",
                "cohorts",
                "gates",
            )
        ),
        *(
            f"status.rollout.cohorts[].{k}"
            for k in ("name", "assigned", "active", "failed", "reporting")
        ),
        *(
            f"status.rollout.gates.{k}"
            for k in (
                "result",
                "reason",
                "failedGateways",
                "errorRate",
                "latencyP95Ms",
                "driftScore",
                "reportingRatio",
                "requests",
                "evaluatedAt",
            )
        ),
        "status.source",
        *(f"status.source.{k}" for k in ("repoURL", "revision", "path")),
        "status.checklist",
        "status.checklist.required",
        "status.checklist.unmet",
        "status.checklist.unmet[].item",
        "status.checklist.unmet[].reason",
        "status.checklist.unmetItems",
        "status.history",
        *(
            f"status.history[].{k}"
            for k in (
                "version",
                "digest",
                "outcome",
                "revision",
                "startedAt",
                "finishedAt",
                "reason",
                "modelDigest",
            )
        ),
    ],
)
