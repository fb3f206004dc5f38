"""Provenance attestations: signed DSSE in-toto statements checked against ``spec.attestations``.

An attestation file is a Sigstore bundle whose content is a DSSE envelope (key-signed or keyless)
or a bare DSSE envelope (``{payloadType, payload, signatures}``) signed by a key. Its signer must
be one of the policy's authorities, one of its subjects must carry the artifact's (or the model's)
SHA-256 digest, and for each rule the predicate type must match and the builder id, source
repository and ref must match the rule's shell-style globs (an empty list accepts any value).

SLSA provenance v1 (``runDetails.builder.id``, ``buildDefinition.externalParameters.workflow`` or
the first ``resolvedDependencies`` entry) and v0.2 (``builder.id``, ``invocation.configSource``)
are understood.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from modelfleet.trust.authorities import endorse
from modelfleet.trust.bundle import IN_TOTO_PAYLOAD_TYPE, dsse_envelope, parse_json
from modelfleet.trust.errors import VerificationError
from modelfleet.trust.policy import AttestationRule, Policy
from modelfleet.trust.signatures import parse_signature

MAX_ATTESTATION_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Provenance:
    """What a verified attestation says about how the model was built."""

    predicate_type: str
    builder_id: str | None
    source_repository: str | None
    ref: str | None
    signer: str
    authority: str


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _normalise_repo(uri: str | None) -> str | None:
    if not uri:
        return None
    uri = uri.removeprefix("git+")
    return uri.removesuffix(".git")


def _summary(predicate_type: str, predicate: Any) -> tuple[str | None, str | None, str | None]:
    """``(builder id, source repository, ref)`` of a provenance predicate."""
    builder = _get(predicate, "runDetails", "builder", "id") or _get(predicate, "builder", "id")
    workflow = _get(predicate, "buildDefinition", "externalParameters", "workflow")
    repo = ref = None
    if isinstance(workflow, dict):
        repo, ref = workflow.get("repository"), workflow.get("ref")
    if repo is None:
        deps = _get(predicate, "buildDefinition", "resolvedDependencies") or []
        uri = deps[0].get("uri") if deps and isinstance(deps[0], dict) else None
        uri = uri or _get(predicate, "invocation", "configSource", "uri")
        if isinstance(uri, str):
            repo, _, ref_part = uri.partition("@")
            ref = ref or (ref_part or None)
    if ref is None:
        ref = _get(predicate, "buildDefinition", "externalParameters", "ref")
    return (
        builder if isinstance(builder, str) else None,
        _normalise_repo(repo if isinstance(repo, str) else None),
        ref if isinstance(ref, str) else None,
    )


def _matches(value: str | None, globs: Sequence[str]) -> bool:
    if not globs:
        return True
    if value is None:
        return False
    return any(
        fnmatch.fnmatchcase(value, g) or fnmatch.fnmatchcase(value, _normalise_repo(g) or g)
        for g in globs
    )


@dataclass(frozen=True)
class _Statement:
    predicate_type: str
    predicate: Any
    subject_digests: frozenset[str]
    signer: str
    authority: str


def _read(path: Path, policy: Policy, now: datetime) -> _Statement:
    try:
        if path.stat().st_size > MAX_ATTESTATION_BYTES:
            raise VerificationError("provenance", f"attestation {path.name} is too large")
        raw = path.read_bytes()
    except OSError as exc:
        raise VerificationError(
            "input", f"cannot read attestation {path}: {exc.strerror}"
        ) from None
    doc = parse_json(raw, f"attestation {path.name}")
    if "dsseEnvelope" not in doc and "payloadType" in doc:  # a bare DSSE envelope, key-signed
        doc = {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {}},
            "dsseEnvelope": doc,
        }
    if dsse_envelope(doc) is None:
        raise VerificationError("provenance", f"attestation {path.name} is not a DSSE envelope")
    # an attestation is signed by any one authority of the policy, whatever spec.require says
    (endorsement,) = endorse(
        policy, [parse_signature(raw, doc, "attestation")], now=now, require="any"
    )
    signer = endorsement.signer
    assert endorsement.signature.envelope is not None
    ptype, payload, _sigs = endorsement.signature.envelope
    if ptype != IN_TOTO_PAYLOAD_TYPE:
        raise VerificationError("provenance", f"attestation {path.name}: payload type {ptype!r}")
    try:
        statement = json.loads(payload)
    except ValueError:
        raise VerificationError(
            "provenance", f"attestation {path.name}: statement is not JSON"
        ) from None
    digests = frozenset(
        f"sha256:{s['digest']['sha256']}"
        for s in statement.get("subject") or []
        if isinstance(s, dict) and isinstance(s.get("digest"), dict) and "sha256" in s["digest"]
    )
    return _Statement(
        str(statement.get("predicateType")),
        statement.get("predicate"),
        digests,
        signer.identity,
        signer.authority,
    )


def check_attestations(
    policy: Policy,
    attestations: Sequence[Path],
    subject_digests: frozenset[str],
    now: datetime,
) -> tuple[Provenance, ...]:
    """Verifies every attestation and checks each rule of the policy; fails closed."""
    statements: list[_Statement] = []
    problems: list[str] = []
    for path in attestations:
        try:
            statements.append(_read(path, policy, now))
        except VerificationError as exc:
            problems.append(f"{path.name}: {exc.check}: {exc.reason}")
    found: list[Provenance] = []
    for rule in policy.attestations:
        found.append(_satisfy(rule, statements, subject_digests, problems))
    return tuple(found)


def _satisfy(
    rule: AttestationRule,
    statements: list[_Statement],
    subjects: frozenset[str],
    problems: list[str],
) -> Provenance:
    reasons = list(problems)
    for st in statements:
        if st.predicate_type != rule.predicate_type:
            continue
        if not (st.subject_digests & subjects):
            names = ", ".join(sorted(st.subject_digests)) or "no digest"
            reasons.append(f"attestation is for {names}, not this model")
            continue
        builder, repo, ref = _summary(st.predicate_type, st.predicate)
        if not _matches(builder, rule.builder_ids):
            reasons.append(f"builder {builder!r} is not one of {list(rule.builder_ids)}")
            continue
        if not _matches(repo, rule.source_repositories):
            reasons.append(
                f"source repository {repo!r} is not one of {list(rule.source_repositories)}"
            )
            continue
        if not _matches(ref, rule.refs):
            reasons.append(f"ref {ref!r} is not one of {list(rule.refs)}")
            continue
        return Provenance(rule.predicate_type, builder, repo, ref, st.signer, st.authority)
    detail = "; ".join(reasons) if reasons else "none was given"
    raise VerificationError("provenance", f"no valid {rule.predicate_type} attestation: {detail}")
