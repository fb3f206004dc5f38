"""A throwaway X.509 PKI for tests: root and intermediate CAs and code-signing leaf certificates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn: str | None, org: str | None = None) -> x509.Name:
    attrs = []
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if cn:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)


def make_ca(
    cn: str,
    *,
    parent: Issued | None = None,
    org: str = "modelfleet-test",
    not_before: datetime | None = None,
    lifetime: timedelta = timedelta(days=3650),
    extra_eku: Sequence[x509.ObjectIdentifier] = (),
) -> Issued:
    """A CA certificate: self-signed root, or an intermediate signed by ``parent``."""
    key = ec.generate_private_key(ec.SECP384R1())
    start = not_before or datetime.now(UTC) - timedelta(days=1)
    issuer_name = parent.cert.subject if parent else _name(cn, org)
    signer = parent.key if parent else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if parent:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()),
            critical=False,
        )
    if extra_eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extra_eku)), critical=False)
    return Issued(builder.sign(signer, hashes.SHA384()), key)


def make_leaf(
    issuer: Issued,
    *,
    subject_cn: str | None = "model-signer",
    sans: Sequence[x509.GeneralName] = (),
    not_before: datetime | None = None,
    lifetime: timedelta = timedelta(days=30),
    code_signing: bool = True,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    key: ec.EllipticCurvePrivateKey | None = None,
    serial: int | None = None,
) -> Issued:
    """An end-entity signing certificate (EC P-256) issued by ``issuer``."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    start = not_before or datetime.now(UTC) - timedelta(hours=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject_cn))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + lifetime)
        .add_extension(
            x509.KeyUsage(code_signing, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    if code_signing:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(list(sans)), critical=subject_cn is None
        )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return Issued(builder.sign(issuer.key, hashes.SHA256()), key)


@dataclass(frozen=True)
class Pki:
    """Root → intermediate → leaf; ``chain`` is what a signer ships (leaf, intermediate)."""

    root: Issued
    intermediate: Issued
    leaf: Issued

    @property
    def chain(self) -> list[x509.Certificate]:
        return [self.leaf.cert, self.intermediate.cert]

    @property
    def root_pem(self) -> str:
        return pem(self.root.cert).decode()


def make_pki(
    *,
    subject_cn: str | None = "model-signer",
    san_email: str | None = "ml-release@example.com",
    not_before: datetime | None = None,
    lifetime: timedelta = timedelta(days=30),
) -> Pki:
    """A fresh three-level PKI whose leaf carries ``subject_cn`` and an email SAN."""
    root = make_ca("modelfleet test root")
    inter = make_ca("modelfleet test intermediate", parent=root)
    sans = [x509.RFC822Name(san_email)] if san_email else []
    leaf = make_leaf(
        inter, subject_cn=subject_cn, sans=sans, not_before=not_before, lifetime=lifetime
    )
    return Pki(root, inter, leaf)
