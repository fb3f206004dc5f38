"""Where the fleet's key material lives in the cluster: two Secrets in the fleet's namespace.

* ``modelfleet-fleet-ca`` (Opaque): ``ca.crt`` and ``ca.key`` of the fleet CA. Only enrollment
  reads the key; guard this Secret with RBAC like any CA key.
* ``modelfleet-fleet-api-tls`` (``kubernetes.io/tls``): the fleet API's server certificate
  (``tls.crt``/``tls.key``) and ``ca.crt``, the fleet CA the server checks client certificates
  against. Mount it into the fleet API's pods, or let ``modelfleet fleet-api`` read it.

Synchronous (the ``kubernetes`` client); used by the CLI and by programmatic enrollment.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from modelfleet.enrollment.pki import DEFAULT_SANS, DEFAULT_SERVER_VALIDITY, FleetCA, IssuedCert
from modelfleet.errors import ClusterError, ConfigError

CA_SECRET = "modelfleet-fleet-ca"
TLS_SECRET = "modelfleet-fleet-api-tls"
LABELS = {"app.kubernetes.io/part-of": "modelfleet", "app.kubernetes.io/component": "fleet-api"}


@dataclass(frozen=True)
class ServerTLS:
    """The fleet API's server certificate and key, and the fleet CA certificate (all PEM)."""

    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes

    def sans(self) -> list[str]:
        cert = x509.load_pem_x509_certificate(self.cert_pem)
        try:
            ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return []
        names: list[str] = [str(n) for n in ext.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
        return names


def _core(api: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api)


def _status(exc: Exception) -> int:
    return int(getattr(exc, "status", 0) or 0)


def _read(api: Any, namespace: str, name: str) -> dict[str, bytes] | None:
    from kubernetes.client.exceptions import ApiException

    try:
        secret = _core(api).read_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise ClusterError(
            f"cannot read Secret {namespace}/{name}: {exc.status} {exc.reason}"
        ) from exc
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


def _write(api: Any, namespace: str, name: str, data: dict[str, bytes], type_: str) -> None:
    from kubernetes.client.exceptions import ApiException

    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": LABELS},
        "type": type_,
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }
    core = _core(api)
    try:
        core.create_namespaced_secret(namespace, body)
    except ApiException as exc:
        if exc.status != 409:
            raise ClusterError(
                f"cannot create Secret {namespace}/{name}: {exc.status} {exc.reason}"
            ) from exc
        try:
            core.replace_namespaced_secret(name, namespace, body)
        except ApiException as exc2:
            raise ClusterError(
                f"cannot update Secret {namespace}/{name}: {exc2.status} {exc2.reason}"
            ) from exc2


def load_fleet_ca(api: Any, namespace: str) -> FleetCA:
    """The fleet CA from its Secret; a clear error when ``fleet-ca init`` has not run."""
    data = _read(api, namespace, CA_SECRET)
    if data is None:
        raise ConfigError(
            f"no fleet CA in namespace {namespace!r} (Secret {CA_SECRET}); "
            f"run: modelfleet fleet-ca init --namespace {namespace}"
        )
    if "ca.crt" not in data or "ca.key" not in data:
        raise ConfigError(f"Secret {namespace}/{CA_SECRET} lacks ca.crt or ca.key")
    return FleetCA.from_pem(data["ca.crt"], data["ca.key"])


def ensure_fleet_ca(api: Any, namespace: str) -> tuple[FleetCA, bool]:
    """The existing fleet CA, or a new one stored in the Secret; ``(ca, created)``."""
    if _read(api, namespace, CA_SECRET) is not None:
        return load_fleet_ca(api, namespace), False
    ca = FleetCA.create()
    _write(api, namespace, CA_SECRET, {"ca.crt": ca.cert_pem, "ca.key": ca.key_pem}, "Opaque")
    return ca, True


def load_server_tls(api: Any, namespace: str) -> ServerTLS:
    """The fleet API's TLS material from ``modelfleet-fleet-api-tls``."""
    data = _read(api, namespace, TLS_SECRET)
    if data is None:
        raise ConfigError(
            f"no fleet API certificate in namespace {namespace!r} (Secret {TLS_SECRET}); "
            f"run: modelfleet fleet-ca init --namespace {namespace}"
        )
    missing = [k for k in ("tls.crt", "tls.key", "ca.crt") if k not in data]
    if missing:
        raise ConfigError(f"Secret {namespace}/{TLS_SECRET} lacks {', '.join(missing)}")
    return ServerTLS(cert_pem=data["tls.crt"], key_pem=data["tls.key"], ca_pem=data["ca.crt"])


def issue_server_tls(
    api: Any,
    namespace: str,
    ca: FleetCA,
    sans: Sequence[str] = DEFAULT_SANS,
    *,
    validity: dt.timedelta = DEFAULT_SERVER_VALIDITY,
) -> IssuedCert:
    """Issue the fleet API's server certificate and store it (replacing any previous one)."""
    issued = ca.issue_server(sans, validity=validity)
    _write(
        api,
        namespace,
        TLS_SECRET,
        {"tls.crt": issued.cert_pem, "tls.key": issued.key_pem, "ca.crt": ca.cert_pem},
        "kubernetes.io/tls",
    )
    return issued


def current_server_tls(api: Any, namespace: str) -> ServerTLS | None:
    """The stored server TLS material, or None when there is none yet."""
    try:
        return load_server_tls(api, namespace)
    except ConfigError:
        return None
