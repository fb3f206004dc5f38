"""DSSE envelopes signed with a bare key or an X.509 certificate chain (no Sigstore log).

Model-signing signatures and attestations of the ``key`` and ``certificate`` kinds are checked
here: the envelope's signatures against the key (including model_signing v0.2's PAE, which its
releases got wrong), and a certificate chain against the authority's CA *at verification time*
(model_signing pins the clock to the leaf's notBefore, so expired certificates pass there), with
the code-signing key usage and the signer identity (subject / SAN) the policy requires.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from modelfleet.trust.errors import VerificationError
from modelfleet.trust.material import (
    PublicKey,
    b64decode,
    cert_sans,
    cert_subject_cn,
    check_code_signing_usage,
    full_match,
    pae,
    pae_compat,
    verify_raw,
)
from modelfleet.trust.policy import CertificateAuthority


def verify_dsse(key: PublicKey, ptype: str, payload: bytes, sigs: list[bytes]) -> bool:
    """Whether one of ``sigs`` signs the envelope with ``key`` (model_signing v0.2 PAE too)."""
    candidates: list[tuple[bytes, hashes.HashAlgorithm | None]] = [
        (pae(ptype, payload), None),
        (pae_compat(ptype, payload), None),
    ]
    if isinstance(key, ec.EllipticCurvePublicKey):  # v0.2 certificates hashed with SHA-256 always
        candidates.append((pae_compat(ptype, payload), hashes.SHA256()))
    return any(verify_raw(key, s, data, ec_hash_override=h) for s in sigs for data, h in candidates)


def bundle_certificates(doc: dict[str, Any]) -> list[x509.Certificate]:
    """The bundle's X.509 certificates, leaf first (none for a key-signed bundle)."""
    material = doc.get("verificationMaterial") or {}
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
