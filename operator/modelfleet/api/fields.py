"""The field paths each parser reads, declared in one place.

Parsers read through :class:`modelfleet.core.doc.Node`, which refuses any path missing from its
registry; ``tests/unit/api/test_schema_drift.py`` checks every path here (and
:data:`modelfleet.api.status.STATUS_FIELDS`) against ``crds/*.yaml``. ``metadata.*`` paths are
standard ObjectMeta and are not in the CRD schemas.
"""

from __future__ import annotations

from modelfleet.core.doc import FieldRegistry
from modelfleet.protocol import HEALTH_FIELDS, MODEL_FIELDS

_METADATA = (
    "metadata",
    "metadata.name",
    "metadata.namespace",
    "metadata.generation",
    "metadata.labels",
    "metadata.annotations",
)


def _selector(prefix: str) -> tuple[str, ...]:
    return (
        prefix,
        f"{prefix}.matchLabels",
        f"{prefix}.matchExpressions",
        f"{prefix}.matchExpressions[].key",
        f"{prefix}.matchExpressions[].operator",
        f"{prefix}.matchExpressions[].values",
    )


MODELRELEASE_FIELDS = FieldRegistry(
    "ModelRelease",
    [
        *_METADATA,
        "spec",
        "spec.model",
        "spec.version",
        "spec.artifact",
        "spec.artifact.uri",
        "spec.artifact.digest",
        "spec.artifact.signature",
        "spec.artifact.signature.uri",
        "spec.artifact.attestations",
        "spec.artifact.attestations[].uri",
        "spec.trustPolicy",
        "spec.gateways",
        *_selector("spec.gateways.selector"),
        "spec.rollout",
        "spec.rollout.salt",
        "spec.rollout.steps",
        "spec.rollout.steps[].name",
        "spec.rollout.steps[].percent",
        *_selector("spec.rollout.steps[].selector"),
        "spec.rollout.steps[].bake",
        "spec.rollout.gates",
        "spec.rollout.gates.maxFailedGateways",
        "spec.rollout.gates.maxErrorRate",
        "spec.rollout.gates.maxLatencyP95Ms",
        "spec.rollout.gates.maxDriftScore",
        "spec.rollout.gates.minReportingRatio",
        "spec.rollout.gates.minRequests",
        "spec.rollout.gates.progressDeadline",
        "spec.rollout.gates.prometheus",
        "spec.rollout.gates.prometheus[].name",
        "spec.rollout.gates.prometheus[].query",
        "spec.rollout.gates.prometheus[].max",
        "spec.rollout.gates.prometheus[].min",
        "spec.rollout.gates.prometheus[].for",
        "spec.rollout.rollback",
        "spec.paused",
        "spec.owner",
        "spec.owner.name",
        "spec.owner.contact",
    ],
)

EDGEGATEWAY_FIELDS = FieldRegistry(
    "EdgeGateway",
    [
        *_METADATA,
        "spec",
        "spec.certificateFingerprint",
        "spec.site",
        "status",
        "status.lastSeen",
        "status.agentVersion",
        "status.models",
        *(f"status.models[].{k}" for k in (*MODEL_FIELDS, "since")),
        "status.health",
        *(f"status.health[].{k}" for k in HEALTH_FIELDS),
    ],
)


def _material(prefix: str) -> tuple[str, ...]:
    return (
        prefix,
        f"{prefix}.data",
        f"{prefix}.file",
        f"{prefix}.secretRef",
        f"{prefix}.secretRef.name",
        f"{prefix}.secretRef.namespace",
        f"{prefix}.secretRef.key",
    )


_AUTH = "spec.authorities[]"
TRUSTPOLICY_FIELDS = FieldRegistry(
    "TrustPolicy",
    [
        *_METADATA,
        "spec",
        "spec.authorities",
        f"{_AUTH}.name",
        *_material(f"{_AUTH}.key"),
        f"{_AUTH}.certificate",
        *_material(f"{_AUTH}.certificate.caChain"),
        f"{_AUTH}.certificate.identity",
        f"{_AUTH}.certificate.identity.subject",
        f"{_AUTH}.certificate.identity.san",
        f"{_AUTH}.certificate.identity.sanRegExp",
        f"{_AUTH}.keyless",
        f"{_AUTH}.keyless.identities",
        *(
            f"{_AUTH}.keyless.identities[].{k}"
            for k in ("issuer", "issuerRegExp", "subject", "subjectRegExp")
        ),
        f"{_AUTH}.keyless.trustRoot",
        f"{_AUTH}.keyless.trustRoot.publicGood",
        f"{_AUTH}.keyless.trustRoot.data",
        f"{_AUTH}.keyless.trustRoot.file",
        f"{_AUTH}.keyless.trustRoot.configMapRef",
        f"{_AUTH}.keyless.trustRoot.configMapRef.name",
        f"{_AUTH}.keyless.trustRoot.configMapRef.namespace",
        f"{_AUTH}.keyless.trustRoot.configMapRef.key",
        f"{_AUTH}.keyless.requireTransparencyLog",
        "spec.hashing",
        *(
            f"spec.hashing.{k}"
            for k in ("method", "serialization", "shardSize", "allowSymlinks", "ignorePaths")
        ),
        "spec.attestations",
        *(
            f"spec.attestations[].{k}"
            for k in ("predicateType", "builderIds", "sourceRepositories", "refs")
        ),
        "spec.deniedDigests",
        "spec.require",
        "spec.releaseChecklist",
        "spec.releaseChecklist.required",
        "spec.namespaces",
        *_selector("spec.namespaceSelector"),
    ],
)
