"""Cryptographic material: public keys, certificates, identities, DSSE, Sigstore trust roots.

The small primitives the verifiers share. The public-good Sigstore trust root is the copy embedded
in the installed ``sigstore`` package, read from disk: nothing here touches the network.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from modelfleet.trust.errors import VerificationError

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

OIDC_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OTHERNAME_USERNAME = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.7")


def load_public_key(pem: bytes, where: str = "key") -> PublicKey:
    """A PEM public key (EC P-256/P-384/P-521, Ed25519 or RSA)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise VerificationError("policy", f"{where} is not a PEM public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise VerificationError("policy", f"{where}: unsupported key type {type(key).__name__}")
    return key


def key_id(key: PublicKey) -> str:
    """``sha256:<hex>`` of the key's DER SubjectPublicKeyInfo (stable across PEM formatting)."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"sha256:{hashlib.sha256(der).hexdigest()}"


def pem_of(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def ec_hash(key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    """The hash Sigstore pairs with an EC curve."""
    size = key.curve.key_size
    if size <= 256:
        return hashes.SHA256()
    if size <= 384:
        return hashes.SHA384()
    return hashes.SHA512()


def verify_raw(
    key: PublicKey,
    signature: bytes,
    data: bytes,
    *,
    ec_hash_override: hashes.HashAlgorithm | None = None,
) -> bool:
    """Whether ``signature`` over ``data`` verifies with ``key``."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(ec_hash_override or ec_hash(key)))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            try:
                key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
                key.verify(signature, data, pss, hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def verify_prehashed(key: PublicKey, signature: bytes, sha256_digest: bytes) -> bool:
    """Whether ``signature`` is over the message whose SHA-256 is ``sha256_digest``."""
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, sha256_digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, sha256_digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        else:  # Ed25519 signs messages, not digests
            return False
    except InvalidSignature:
        return False
    return True


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    ptype = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(ptype), ptype, len(payload), payload)


def pae_compat(payload_type: str, payload: bytes) -> bytes:
    """The buggy PAE of model_signing 0.2.x, needed to verify signatures it made."""
    return f"DSSEV1 {len(payload_type)} {payload_type} {len(payload)} {payload!r}".encode()


def b64decode(value: str, where: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        raise VerificationError("bundle", f"{where} is not valid base64") from None


# --- certificates and identities -------------------------------------------------------------


def _der_utf8(value: bytes) -> str | None:
    """Decodes a DER UTF8String (tag 0x0C) as Fulcio writes its v2 extensions."""
    if len(value) < 2 or value[0] != 0x0C:
        return None
    length, offset = value[1], 2
    if length & 0x80:
        n = length & 0x7F
        length, offset = int.from_bytes(value[2 : 2 + n], "big"), 2 + n
    body = value[offset : offset + length]
    if len(body) != length:
        return None
    return body.decode("utf-8", "replace")


def cert_issuer(cert: x509.Certificate) -> str | None:
    """The OIDC issuer a Fulcio certificate records (v2 extension first, then v1)."""
    for oid, is_der in ((OIDC_ISSUER_V2, True), (OIDC_ISSUER_V1, False)):
        try:
            ext = cert.extensions.get_extension_for_oid(oid)
        except x509.ExtensionNotFound:
            continue
        raw = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else b""
        value = _der_utf8(raw) if is_der else raw.decode("utf-8", "replace")
        if value:
            return value
    return None


def cert_sans(cert: x509.Certificate) -> list[str]:
    """Every SAN value: emails, URIs, DNS names and Fulcio's username otherName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    values: list[str] = []
    values += san.get_values_for_type(x509.RFC822Name)
    values += san.get_values_for_type(x509.UniformResourceIdentifier)
    values += san.get_values_for_type(x509.DNSName)
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == OTHERNAME_USERNAME:
            decoded = _der_utf8(other.value)
            if decoded:
                values.append(decoded)
    return values


def cert_subject_cn(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def _usages(leaf: x509.Certificate) -> tuple[list[str], list[str]]:
    """The leaf's key usages and extended key usages, by name (empty when absent)."""
    usages: list[str] = []
    with contextlib.suppress(x509.ExtensionNotFound):
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        for attr, label in _KEY_USAGES:
            with contextlib.suppress(ValueError):  # encipher/decipherOnly need keyAgreement
                if getattr(ku, attr):
                    usages.append(label)
    extended: list[str] = []
    with contextlib.suppress(x509.ExtensionNotFound):
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        extended = [getattr(oid, "_name", None) or oid.dotted_string for oid in eku]
    return usages, extended


_KEY_USAGES = (
    ("digital_signature", "digitalSignature"),
    ("content_commitment", "contentCommitment"),
    ("key_encipherment", "keyEncipherment"),
    ("data_encipherment", "dataEncipherment"),
    ("key_agreement", "keyAgreement"),
    ("key_cert_sign", "keyCertSign"),
    ("crl_sign", "cRLSign"),
    ("encipher_only", "encipherOnly"),
    ("decipher_only", "decipherOnly"),
)


def check_code_signing_usage(leaf: x509.Certificate, where: str) -> None:
    """A signing leaf must allow digital signatures *and* code signing, as Sigstore and cosign
    require: keyUsage with digitalSignature, and extendedKeyUsage listing codeSigning. A TLS
    server or client certificate, or a key-encipherment one, signs no model."""
    usages, extended = _usages(leaf)
    has_ku = "digitalSignature" in usages
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        has_eku = x509.oid.ExtendedKeyUsageOID.CODE_SIGNING in eku
    except x509.ExtensionNotFound:
        has_eku = False
    if not (has_ku and has_eku):
        raise VerificationError(
            "certificate",
            f"{where}: the signing certificate is not for code signing: it needs keyUsage "
            f"digitalSignature and extendedKeyUsage codeSigning, it has keyUsage "
            f"[{', '.join(usages) or 'none'}] and extendedKeyUsage "
            f"[{', '.join(extended) or 'none'}]",
        )


def full_match(pattern: str, value: str) -> bool:
    """Anchored regular-expression match: the whole value, never a substring."""
    return re.fullmatch(pattern, value) is not None


@dataclass(frozen=True)
class IdentityMatch:
    """The identity that satisfied a policy."""

    subject: str
    issuer: str | None


def match_keyless(
    cert: x509.Certificate, identities: Sequence[object], authority: str
) -> IdentityMatch:
    """Checks a Fulcio certificate against ``KeylessIdentity`` entries; the first match wins.

    Raises check ``issuer`` when no identity accepts the certificate's issuer, else ``identity``.
    """
    from modelfleet.trust.policy import KeylessIdentity

    issuer = cert_issuer(cert)
    sans = cert_sans(cert)
    issuer_ok = False
    for ident in identities:
        assert isinstance(ident, KeylessIdentity)
        if issuer is None:
            break
        if ident.issuer is not None and ident.issuer != issuer:
            continue
        if ident.issuer_regexp is not None and not full_match(ident.issuer_regexp, issuer):
            continue
        issuer_ok = True
        for san in sans:
            if ident.subject is not None and san == ident.subject:
                return IdentityMatch(san, issuer)
            if ident.subject_regexp is not None and full_match(ident.subject_regexp, san):
                return IdentityMatch(san, issuer)
    if not issuer_ok:
        raise VerificationError(
            "issuer",
            f"authority {authority!r}: certificate issuer {issuer!r} matches no allowed issuer",
        )
    raise VerificationError(
        "identity",
        f"authority {authority!r}: signer {', '.join(sans) or '(no SAN)'} from {issuer} "
        "matches no allowed identity",
    )
