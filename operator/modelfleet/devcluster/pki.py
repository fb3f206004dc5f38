"""Throw-away PKI for the local control plane: a CA, the API server's serving certificate, an
admin client certificate (group ``system:masters``) and the service-account signing key."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from modelfleet import certs

#: Names and addresses the API server answers to (loopback, and the in-cluster service names).
APISERVER_SANS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "127.0.0.1",
    "10.0.0.1",
)


@dataclass(frozen=True)
class ControlPlanePKI:
    """Paths of the PEM files written by :func:`write_pki`."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def write_pki(folder: Path, *, days: int = 30) -> ControlPlanePKI:
    """Create every key and certificate the API server and its admin need, under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    valid = (now, now + dt.timedelta(days=days))
    ca_key = certs.new_key()
    ca_name = certs.name("modelfleet-dev-cluster-ca")
    ca_cert = certs.issue(
        ca_name, ca_key.public_key(), signer=ca_key, valid=valid, ca=True, ca_signs_data=True
    )

    def issue(
        cn: str, org: str | None, usage: x509.ObjectIdentifier, sans: tuple[str, ...]
    ) -> tuple[bytes, bytes]:
        key = certs.new_key()
        cert = certs.issue(
            certs.name(cn, org), key.public_key(), issuer=ca_name, signer=ca_key, valid=valid,
            eku=usage, sans=sans,
        )  # fmt: skip
        return certs.cert_pem(cert), certs.key_pem(key)

    serving_cert, serving_key = issue(
        "kube-apiserver", None, ExtendedKeyUsageOID.SERVER_AUTH, APISERVER_SANS
    )
    admin_cert, admin_key = issue("admin", "system:masters", ExtendedKeyUsageOID.CLIENT_AUTH, ())
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_pub = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ControlPlanePKI(
        ca_cert=_write(folder / "ca.crt", certs.cert_pem(ca_cert)),
        ca_key=_write(folder / "ca.key", certs.key_pem(ca_key)),
        serving_cert=_write(folder / "apiserver.crt", serving_cert),
        serving_key=_write(folder / "apiserver.key", serving_key),
        admin_cert=_write(folder / "admin.crt", admin_cert),
        admin_key=_write(folder / "admin.key", admin_key),
        sa_key=_write(folder / "sa.key", certs.key_pem(sa_key)),
        sa_pub=_write(folder / "sa.pub", sa_pub),
    )
