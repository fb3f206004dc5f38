"""The fleet CA: an EC P-256 certificate authority that issues gateway client certificates and
the fleet API's server certificate.

A gateway's identity is the SHA-256 fingerprint of its DER client certificate
(``sha256:<64 hex>``), recorded in ``EdgeGateway.spec.certificateFingerprint`` at enrollment;
chaining to this CA is necessary but not sufficient (see ``docs/fleet-api.md``). Everything here
is pure crypto on bytes; storing the CA in Secrets is :mod:`modelfleet.fleet.secrets`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelfleet.errors import ConfigError

CA_COMMON_NAME = "modelfleet fleet CA"
SERVER_COMMON_NAME = "modelfleet-fleet-api"
DEFAULT_CA_VALIDITY = dt.timedelta(days=3650)
DEFAULT_SERVER_VALIDITY = dt.timedelta(days=365)
DEFAULT_CLIENT_VALIDITY = dt.timedelta(days=30)
DEFAULT_SANS: tuple[str, ...] = ("localhost", "127.0.0.1")
#: Backdating of notBefore, so a gateway whose clock is slightly behind accepts a fresh cert.
CLOCK_SKEW = dt.timedelta(minutes=5)

_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")


class PKIError(ConfigError):
    """A certificate or key is unreadable, mismatched or not what the fleet expects."""


def fingerprint(cert: x509.Certificate | bytes) -> str:
    """``sha256:<64 hex>`` of the DER encoding of ``cert`` (a certificate or its DER bytes)."""
    der = cert if isinstance(cert, bytes) else cert.public_bytes(serialization.Encoding.DER)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def is_fingerprint(value: object) -> bool:
    """Whether ``value`` is a well-formed ``sha256:<64 lowercase hex>`` fingerprint."""
    return isinstance(value, str) and _FINGERPRINT.match(value) is not None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


@dataclass(frozen=True)
class IssuedCert:
    """A certificate with its private key, both PEM, and the certificate's fingerprint."""

    cert_pem: bytes
    key_pem: bytes
    fingerprint: str
    not_after: dt.datetime


@dataclass(frozen=True)
class FleetCA:
    """The CA certificate and key, in memory; issue certificates with :meth:`issue_client` and
    :meth:`issue_server`. Reuse one instance to enroll many gateways quickly."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(
        cls, *, common_name: str = CA_COMMON_NAME, validity: dt.timedelta = DEFAULT_CA_VALIDITY
    ) -> FleetCA:
        """A fresh self-signed CA (EC P-256, path length 0: it signs only leaf certificates)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert=cert, key=key)

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes) -> FleetCA:
        """Load a CA from PEM; the key must match the certificate and the certificate be a CA."""
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            key = serialization.load_pem_private_key(key_pem, password=None)
        except ValueError as exc:
            raise PKIError(f"fleet CA: unreadable certificate or key: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PKIError("fleet CA: the key is not an EC private key")
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
            raise PKIError("fleet CA: the key does not match the certificate")
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise PKIError("fleet CA: the certificate is not a CA certificate")
        return cls(cert=cert, key=key)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)

    def _leaf(
        self,
        common_name: str,
        key: ec.EllipticCurvePrivateKey,
        validity: dt.timedelta,
        eku: x509.ObjectIdentifier,
        sans: Sequence[str],
    ) -> IssuedCert:
        now = _now()
        not_after = min(now + validity, self.cert.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(_san(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return IssuedCert(
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_pem=_key_pem(key),
            fingerprint=fingerprint(cert),
            not_after=not_after,
        )

    def issue_client(
        self, gateway: str, *, validity: dt.timedelta = DEFAULT_CLIENT_VALIDITY
    ) -> IssuedCert:
        """A client certificate for one gateway (CN = gateway name, EKU clientAuth)."""
        if validity <= dt.timedelta(0):
            raise PKIError("certificate validity must be positive")
        key = ec.generate_private_key(ec.SECP256R1())
        return self._leaf(gateway, key, validity, ExtendedKeyUsageOID.CLIENT_AUTH, ())

    def issue_server(
        self,
        sans: Sequence[str] = DEFAULT_SANS,
        *,
        validity: dt.timedelta = DEFAULT_SERVER_VALIDITY,
    ) -> IssuedCert:
        """The fleet API's server certificate (EKU serverAuth) for the given DNS names / IPs."""
        names = [s.strip() for s in sans if s.strip()]
        if not names:
            raise PKIError("the server certificate needs at least one DNS name or IP address")
        key = ec.generate_private_key(ec.SECP256R1())
        return self._leaf(SERVER_COMMON_NAME, key, validity, ExtendedKeyUsageOID.SERVER_AUTH, names)


def parse_validity(text: str) -> dt.timedelta:
    """``90d``, ``12h``, ``30m`` (or a bare number of days) as a positive timedelta."""
    m = re.fullmatch(r"\s*(\d+)\s*([dhm]?)\s*", text)
    if not m or int(m.group(1)) <= 0:
        raise PKIError(f"validity {text!r} must be a positive number of days, e.g. 30d, 12h, 90m")
    unit = m.group(2) or "d"
    amount = int(m.group(1))
    return {
        "d": dt.timedelta(days=amount),
        "h": dt.timedelta(hours=amount),
        "m": dt.timedelta(minutes=amount),
    }[unit]
