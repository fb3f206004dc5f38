"""OpenSSF model-signing signatures: who signed, and which manifest they signed.

A model-signing signature is a Sigstore bundle around a DSSE in-toto statement whose predicate is
the model's manifest. Every released format is accepted: key (bare public key), certificate (an
X.509 chain, no transparency log) and Sigstore keyless; v0.2 payloads and their buggy PAE too.

What model_signing 1.1.1 leaves out and this module does: the certificate verifier here checks the
chain *at verification time* (model_signing pins the clock to the leaf's notBefore, so expired
certificates pass there) and the signer identity (subject / SAN) the policy requires; the Sigstore
verifier uses the embedded or the policy's trust root, never the network; and the manifest is
only parsed here — hashing is pinned by the policy, never guessed from the signature.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from modelfleet.trust.bundle import (
    IN_TOTO_PAYLOAD_TYPE,
    dsse_envelope,
    parse_json,
    verify_keyless_bundle,
)
from modelfleet.trust.digest import HASH_TYPE_NAMES, root_digest
from modelfleet.trust.errors import VerificationError
from modelfleet.trust.material import (
    PublicKey,
    cert_sans,
    cert_subject_cn,
    check_code_signing_usage,
    full_match,
    key_id,
    load_public_key,
    pae,
    pae_compat,
    verify_raw,
)
from modelfleet.trust.policy import Authority, CertificateAuthority, Hashing, Policy

MODEL_SIGNING_PREDICATES = (
    "https://model_signing/signature/v1.0",
    "https://model_signing/Digests/v0.1",
)


@dataclass(frozen=True)
class SignedManifest:
    """A model-signing manifest whose signature verified against one authority."""

    items: dict[str, str]  # identifier -> hex digest
    serialization: dict[str, Any]
    root_digest: str
    authority: Authority
    signer: str
    issuer: str | None
    tlog_index: int | None = None
    integrated_time: datetime | None = None


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


def _verify_dsse_with(key: PublicKey, ptype: str, payload: bytes, sigs: list[bytes]) -> bool:
    candidates: list[tuple[bytes, hashes.HashAlgorithm | None]] = [
        (pae(ptype, payload), None),
        (pae_compat(ptype, payload), None),
    ]
    if isinstance(key, ec.EllipticCurvePublicKey):  # v0.2 certificates hashed with SHA-256 always
        candidates.append((pae_compat(ptype, payload), hashes.SHA256()))
    return any(verify_raw(key, s, data, ec_hash_override=h) for s in sigs for data, h in candidates)


def _certificates(doc: dict[str, Any]) -> list[x509.Certificate]:
    material = doc.get("verificationMaterial") or {}
    from modelfleet.trust.material import b64decode

    raws: list[str] = []
    if isinstance(material.get("certificate"), dict):
        raws.append(str(material["certificate"].get("rawBytes", "")))
    chain = material.get("x509CertificateChain")
    if isinstance(chain, dict):
        raws += [str(c.get("rawBytes", "")) for c in chain.get("certificates") or []]
    try:
        return [x509.load_der_x509_certificate(b64decode(r, "certificate")) for r in raws]
    except ValueError as exc:
        raise VerificationError("bundle", f"malformed certificate: {exc}") from None


def check_certificate(
    chain: list[x509.Certificate], auth: CertificateAuthority, name: str, now: datetime
) -> tuple[PublicKey, str]:
    """Validates the chain against the CA at ``now``, the key usage and the signer identity."""
    from OpenSSL import crypto

    leaf = chain[0]
    if now < leaf.not_valid_before_utc:
        start = f"{leaf.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}"
        raise VerificationError("certificate", f"authority {name!r}: not valid before {start}")
    if now > leaf.not_valid_after_utc:
        end = f"{leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
        raise VerificationError("certificate", f"authority {name!r}: certificate expired at {end}")
    try:
        cas = x509.load_pem_x509_certificates(auth.ca_chain_pem)
    except ValueError as exc:
        raise VerificationError(
            "policy", f"authority {name!r}: caChain is not PEM: {exc}"
        ) from None
    store = crypto.X509Store()
    for ca in cas:
        store.add_cert(crypto.X509.from_cryptography(ca))
    store.set_flags(crypto.X509StoreFlags.PARTIAL_CHAIN)
    store.set_time(now.replace(tzinfo=None))
    untrusted = [crypto.X509.from_cryptography(c) for c in chain[1:]]
    try:
        crypto.X509StoreContext(
            store, crypto.X509.from_cryptography(leaf), untrusted
        ).verify_certificate()
    except crypto.X509StoreContextError as exc:
        raise VerificationError(
            "certificate", f"authority {name!r}: certificate does not chain to its CA: {exc}"
        ) from None
    check_code_signing_usage(leaf, f"authority {name!r}")
    ident, cn, sans = auth.identity, cert_subject_cn(leaf), cert_sans(leaf)
    if ident.subject is not None and cn != ident.subject:
        raise VerificationError(
            "identity", f"authority {name!r}: certificate subject {cn!r} is not {ident.subject!r}"
        )
    if ident.san is not None and ident.san not in sans:
        raise VerificationError(
            "identity", f"authority {name!r}: no SAN equals {ident.san!r} (has {sans})"
        )
    if ident.san_regexp is not None and not any(full_match(ident.san_regexp, s) for s in sans):
        raise VerificationError(
            "identity", f"authority {name!r}: no SAN matches ~/{ident.san_regexp}/ (has {sans})"
        )
    key = leaf.public_key()
    assert isinstance(key, PublicKey)
    signer = ", ".join(s for s in [f"CN={cn}" if cn else "", *sans] if s)
    return key, signer


def _best(failures: list[VerificationError], fallback: VerificationError) -> VerificationError:
    if not failures:
        return fallback
    best = max(failures, key=lambda e: e.stage)
    if len(failures) > 1:
        return VerificationError(best.check, "; ".join(f.reason for f in failures))
    return best


def verify_dsse_signers(
    raw: bytes, doc: dict[str, Any], policy: Policy, now: datetime
) -> tuple[Authority, str, str | None, int | None, datetime | None, str, bytes]:
    """Finds an authority of ``policy`` that signed this DSSE bundle.

    Returns ``(authority, signer, issuer, tlog_index, integrated_time, payload_type, payload)``.
    """
    envelope = dsse_envelope(doc)
    if envelope is None:
        raise VerificationError("bundle", "the signature has no DSSE envelope")
    ptype, payload, sigs = envelope
    material = doc.get("verificationMaterial") or {}
    has_tlog = bool(material.get("tlogEntries"))
    failures: list[VerificationError] = []
    if "publicKey" in material:
        for auth in policy.authorities:
            if auth.key is None:
                continue
            key = load_public_key(auth.key.pem, f"authority {auth.name!r} key")
            if _verify_dsse_with(key, ptype, payload, sigs):
                return auth, key_id(key), None, None, None, ptype, payload
            failures.append(
                VerificationError(
                    "signature", f"authority {auth.name!r}: signature does not verify with its key"
                )
            )
        raise _best(
            failures,
            VerificationError("authority", "key-signed, and the policy has no key authority"),
        )
    chain = _certificates(doc)
    if not chain:
        raise VerificationError(
            "bundle", "the signature carries neither a public key nor a certificate"
        )
    for auth in policy.authorities:
        try:
            if auth.keyless is not None and has_tlog:
                ev = verify_keyless_bundle(
                    raw,
                    trusted_root_json=auth.keyless.trusted_root_json,
                    identities=auth.keyless.identities,
                    authority=auth.name,
                    artifact_sha256=None,
                )
                assert ev.payload_type is not None and ev.payload is not None
                return (
                    auth,
                    ev.signer,
                    ev.issuer,
                    ev.tlog_index,
                    ev.integrated_time,
                    ev.payload_type,
                    ev.payload,
                )
            if auth.certificate is not None:
                key, signer = check_certificate(chain, auth.certificate, auth.name, now)
                if not _verify_dsse_with(key, ptype, payload, sigs):
                    raise VerificationError(
                        "signature", f"authority {auth.name!r}: signature does not verify"
                    )
                return auth, signer, None, None, None, ptype, payload
        except VerificationError as exc:
            failures.append(exc)
    raise _best(
        failures,
        VerificationError(
            "authority", "certificate-signed, and no certificate or keyless authority applies"
        ),
    )


def verify_model_signature(raw: bytes, policy: Policy, *, now: datetime) -> SignedManifest:
    """Verifies a model-signing signature against the policy; returns the signed manifest."""
    from model_signing._signing.signing import dsse_payload_to_manifest

    doc = parse_json(raw, "signature")
    auth, signer, issuer, index, when, ptype, payload = verify_dsse_signers(raw, doc, policy, now)
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
    return SignedManifest(
        items=items,
        serialization=dict(manifest.serialization_type),
        root_digest=root_digest(items),
        authority=auth,
        signer=signer,
        issuer=issuer,
        tlog_index=index,
        integrated_time=when,
    )


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
