"""OpenSSF model-signing signatures: who signed, and which manifest they signed.

A model-signing signature is a Sigstore bundle around a DSSE in-toto statement whose predicate is
the model's manifest. Every released format is accepted: key (bare public key), certificate (an
X.509 chain, no transparency log) and Sigstore keyless; v0.2 payloads and their buggy PAE too.
Who signed is decided by the policy's composed authorities (:mod:`modelfleet.trust.authorities`,
with :mod:`modelfleet.trust.dsse` for keys and certificates); this module reads the manifest out
of the statements that verified.

What model_signing 1.1.1 leaves out and this package does: the certificate verifier checks the
chain *at verification time* and the signer identity the policy requires; the Sigstore verifier
uses the embedded or the policy's trust root, never the network; and the manifest is only parsed
here — hashing is pinned by the policy, never guessed from the signature.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelfleet.trust.authorities import Endorsement, endorse
from modelfleet.trust.bundle import IN_TOTO_PAYLOAD_TYPE
from modelfleet.trust.digest import HASH_TYPE_NAMES, root_digest
from modelfleet.trust.errors import VerificationError
from modelfleet.trust.policy import Hashing, Policy
from modelfleet.trust.signatures import Signature, parse_signatures
from modelfleet.trust.signer import Signer


@dataclass(frozen=True)
class SignedManifest:
    """A model-signing manifest whose signatures verified against the policy's authorities."""

    items: dict[str, str]  # identifier -> hex digest
    serialization: dict[str, Any]
    root_digest: str
    signers: tuple[Signer, ...]  # who signed, in the order the policy names its authorities


def _manifest(signature: Signature) -> tuple[dict[str, str], dict[str, Any]]:
    from model_signing._signing.signing import dsse_payload_to_manifest

    assert signature.envelope is not None
    ptype, payload, _sigs = signature.envelope
    if ptype != IN_TOTO_PAYLOAD_TYPE:
        raise VerificationError("bundle", f"DSSE payload type {ptype!r} is not in-toto")
    try:
        statement = json.loads(payload)
        if statement.get("_type") != "https://in-toto.io/Statement/v1":
            raise ValueError(f"statement type {statement.get('_type')!r}")
        manifest = dsse_payload_to_manifest(statement)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise VerificationError("bundle", f"not a model-signing statement: {exc}") from None
    items = {rd.identifier: rd.digest.digest_hex for rd in manifest.resource_descriptors()}
    return items, dict(manifest.serialization_type)


def signed_manifest(endorsements: Sequence[Endorsement]) -> SignedManifest:
    """The one manifest the verified signatures sign (several signatures must sign the same)."""
    items, serialization = _manifest(endorsements[0].signature)
    for other in endorsements[1:]:
        if _manifest(other.signature) != (items, serialization):
            raise VerificationError("integrity", "the signatures of the set sign different models")
    return SignedManifest(
        items=items,
        serialization=serialization,
        root_digest=root_digest(items),
        signers=tuple(e.signer for e in endorsements),
    )


def verify_model_signature(raw: bytes, policy: Policy, *, now: datetime) -> SignedManifest:
    """Verifies a model-signing signature (or set) against the policy; the signed manifest."""
    signatures = parse_signatures(raw)
    if signatures[0].format != "model-signing":
        raise VerificationError("bundle", "the signature is not a model-signing signature")
    return signed_manifest(endorse(policy, signatures, now=now))


def check_hashing(signed: SignedManifest, hashing: Hashing) -> None:
    """The signature must use the policy's pinned hashing; nothing is guessed."""
    ser = signed.serialization
    want: dict[str, Any] = {
        "method": hashing.serialization,
        "hash_type": HASH_TYPE_NAMES[hashing.method],
    }
    got: dict[str, Any] = {"method": ser.get("method"), "hash_type": ser.get("hash_type")}
    if hashing.serialization == "shards":
        want["shard_size"] = hashing.shard_size
        got["shard_size"] = ser.get("shard_size")
    if want != got:
        raise VerificationError(
            "hashing",
            f"signature was made with {got}, the policy pins {want}",
        )
