"""X.509 building blocks, written once: EC P-256 keys, PKCS#8 PEM, names, subject alternative
names, one certificate builder for CA and leaf certificates, and :class:`TLSFiles`, the PEM files
of one mTLS end (the agent's client identity, the fleet API's server identity).

Used by the fleet CA (:mod:`modelfleet.enrollment.pki`: gateway and fleet API certificates) and the
dev cluster's throw-away PKI (:mod:`modelfleet.devcluster.pki`). Pure crypto on values: no files,
no clock reads (callers pass the validity window).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class TLSFiles:
    """One end of an mTLS connection, as PEM files: its certificate and key, and the CA the other
    end's certificate must chain to (the fleet CA, on both ends)."""

    cert: Path
    key: Path
    ca: Path


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh EC P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def alt_names(names: Sequence[str]) -> x509.SubjectAlternativeName:
    """IP addresses as IP entries, everything else as DNS names."""
    entries: list[x509.GeneralName] = []
    for entry in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            entries.append(x509.DNSName(entry))
    return x509.SubjectAlternativeName(entries)


def _usage(*, ca: bool, sign_data: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign_data,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def issue(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    *,
    issuer: x509.Name | None = None,
    signer: ec.EllipticCurvePrivateKey,
    valid: tuple[dt.datetime, dt.datetime],
    ca: bool = False,
    path_length: int | None = None,
    eku: x509.ObjectIdentifier | None = None,
    sans: Sequence[str] = (),
    ca_signs_data: bool = False,
) -> x509.Certificate:
    """A certificate for ``public_key`` signed by ``signer`` (self-signed without ``issuer``).

    A CA certificate (``ca``) may sign certificates and CRLs (and data with ``ca_signs_data``);
    a leaf may sign data (TLS handshakes), with extended key usage ``eku`` and ``sans``. Both
    carry subject and authority key identifiers.
    """
    not_before, not_after = valid
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(_usage(ca=ca, sign_data=ca_signs_data or not ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer is not None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key())
        builder = builder.add_extension(aki, critical=False)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    if sans:
        builder = builder.add_extension(alt_names(sans), critical=False)
    return builder.sign(signer, hashes.SHA256())
