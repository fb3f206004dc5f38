"""Signature files: one Sigstore bundle, or a set of them (a JSON array), parsed once.

A release's signature file holds one bundle (what ``modelfleet sign``, model_signing and cosign
write) or a JSON array of bundles, one per signer, for policies that require several authorities
(``spec.require: all``). Every bundle of a set must be of the same format: all model-signing
signatures (over the same model) or all plain Sigstore bundles over the artifact.

**What counts as a signature.** A model-signing signature (a DSSE in-toto statement whose
predicate type is model_signing's), or a Sigstore *message signature* over the artifact bytes.
Any other signed statement, for example SLSA provenance naming the artifact, is an attestation:
it is checked under ``spec.artifact.attestations`` against the policy's attestation rules, and
refused as the release signature (check ``signature-type``), whoever signed it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509

from modelfleet.trust.bundle import IN_TOTO_PAYLOAD_TYPE, dsse_envelope, parse_json
from modelfleet.trust.dsse import bundle_certificates
from modelfleet.trust.errors import VerificationError

MAX_SIGNATURE_BYTES = 16 * 1024 * 1024
MAX_SIGNATURES = 16  # bundles in one signature file
MODEL_SIGNING_PREDICATES = (
    "https://model_signing/signature/v1.0",
    "https://model_signing/Digests/v0.1",
)

#: ``model-signing``: a DSSE model-signing statement; ``bundle``: a plain Sigstore bundle over the
#: artifact; ``attestation``: a DSSE statement read as an attestation.
Format = Literal["model-signing", "bundle", "attestation"]


@dataclass(frozen=True)
class Signature:
    """One bundle of a signature file (or an attestation), parsed; nothing is verified yet."""

    raw: bytes
    doc: dict[str, Any]
    format: Format
    envelope: tuple[str, bytes, list[bytes]] | None  # (payloadType, payload, signatures) of DSSE
    certificates: list[x509.Certificate] = field(default_factory=list, repr=False)

    @property
    def key_signed(self) -> bool:
        """Whether the verification material is a bare public key (no certificate)."""
        return "publicKey" in (self.doc.get("verificationMaterial") or {})

    @property
    def has_tlog(self) -> bool:
        return bool((self.doc.get("verificationMaterial") or {}).get("tlogEntries"))

    def unmatched(self) -> str:
        """Why no authority of a policy applies to this signature (check ``authority``)."""
        if self.format == "bundle":
            return "no authority of the policy can verify this kind of bundle"
        if self.key_signed:
            return "key-signed, and the policy has no key authority"
        return "certificate-signed, and no certificate or keyless authority applies"


def is_model_signing(doc: dict[str, Any]) -> bool:
    """Whether a parsed bundle carries a model-signing statement."""
    envelope = dsse_envelope(doc)  # a malformed envelope is a "bundle" rejection
    if envelope is None:
        return False
    try:
        statement = json.loads(envelope[1])
    except ValueError:
        return False
    return (
        isinstance(statement, dict) and statement.get("predicateType") in MODEL_SIGNING_PREDICATES
    )


def parse_signature(raw: bytes, doc: dict[str, Any], fmt: Format) -> Signature:
    """A :class:`Signature` of format ``fmt``; a DSSE one must carry a key or a certificate."""
    envelope = dsse_envelope(doc)
    certificates: list[x509.Certificate] = []
    if fmt != "bundle":
        if envelope is None:
            raise VerificationError("bundle", "the signature has no DSSE envelope")
        if "publicKey" not in (doc.get("verificationMaterial") or {}):
            certificates = bundle_certificates(doc)
            if not certificates:
                raise VerificationError(
                    "bundle", "the signature carries neither a public key nor a certificate"
                )
    return Signature(raw, doc, fmt, envelope, certificates)


def read_signature_file(path: Path | None) -> bytes:
    """The bytes of a signature file (at most 16 MiB); no signature is never accepted."""
    if path is None:
        raise VerificationError("input", "no signature given: unsigned models are never accepted")
    try:
        if path.stat().st_size > MAX_SIGNATURE_BYTES:
            raise VerificationError("bundle", f"signature {path.name} is larger than 16 MiB")
        return path.read_bytes()
    except OSError as exc:
        raise VerificationError("input", f"cannot read signature {path}: {exc.strerror}") from None


def parse_signatures(raw: bytes) -> tuple[Signature, ...]:
    """The bundles of a signature file, all of one format (module docstring)."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        value = None
    if not isinstance(value, list):
        doc = parse_json(raw, "signature")
        fmt: Format = "model-signing" if is_model_signing(doc) else "bundle"
        return (parse_signature(raw, doc, fmt),)
    if not value or len(value) > MAX_SIGNATURES:
        raise VerificationError(
            "bundle", f"a signature set holds 1 to {MAX_SIGNATURES} bundles, not {len(value)}"
        )
    signatures = []
    for i, doc in enumerate(value):
        if not isinstance(doc, dict):
            raise VerificationError("bundle", f"signature {i + 1} of the set is not a JSON object")
        fmt = "model-signing" if is_model_signing(doc) else "bundle"
        signatures.append(parse_signature(json.dumps(doc).encode(), doc, fmt))
    if len({s.format for s in signatures}) > 1:
        raise VerificationError(
            "bundle", "the signature set mixes model-signing signatures and plain bundles"
        )
    return tuple(signatures)


def check_signature_type(signature: Signature) -> None:
    """A plain bundle must be a message signature: a signed statement is an attestation."""
    if signature.envelope is None:
        return
    ptype, payload, _sigs = signature.envelope
    if ptype != IN_TOTO_PAYLOAD_TYPE:
        raise VerificationError(
            "signature-type",
            f"the signature is a DSSE envelope of payload type {ptype!r}, not a model signature",
        )
    try:
        statement = json.loads(payload)
        predicate = statement.get("predicateType") if isinstance(statement, dict) else None
    except ValueError:
        predicate = None
    raise VerificationError(
        "signature-type",
        f"the signature is an in-toto statement of predicate type {predicate!r}, not a model "
        f"signature (expected {MODEL_SIGNING_PREDICATES[0]!r} or a message signature over the "
        "artifact); provenance belongs in spec.artifact.attestations",
    )
