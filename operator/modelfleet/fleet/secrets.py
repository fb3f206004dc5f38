"""Where the fleet's key material lives in the cluster: two Secrets in the fleet's namespace.

* ``modelfleet-fleet-ca`` (Opaque): ``ca.crt`` and ``ca.key`` of the fleet CA. Only enrollment
  reads the key; guard this Secret with RBAC like any CA key.
* ``modelfleet-fleet-api-tls`` (``kubernetes.io/tls``): the fleet API's server certificate
  (``tls.crt``/``tls.key``) and ``ca.crt``, the fleet CA the server checks client certificates
  against. Mount it into the fleet API's pods, or let ``modelfleet fleet-api`` read it.

:class:`FleetSecrets` reads and writes them through :class:`~modelfleet.kube.KubeClient` (the
fleet API, ``modelfleet fleet-ca``, ``modelfleet gateway enroll``).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from modelfleet.enrollment.pki import DEFAULT_SANS, DEFAULT_SERVER_VALIDITY, FleetCA, IssuedCert
from modelfleet.errors import ClusterError, ConfigError
from modelfleet.kube import ApiError, KubeClient, core_path

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


def _decode(secret: Mapping[str, Any]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


def _fleet_ca(data: dict[str, bytes] | None, namespace: str) -> FleetCA:
    if data is None:
        raise ConfigError(
            f"no fleet CA in namespace {namespace!r} (Secret {CA_SECRET}); "
            f"run: modelfleet fleet-ca init --namespace {namespace}"
        )
    if "ca.crt" not in data or "ca.key" not in data:
        raise ConfigError(f"Secret {namespace}/{CA_SECRET} lacks ca.crt or ca.key")
    return FleetCA.from_pem(data["ca.crt"], data["ca.key"])


def _server_tls(data: dict[str, bytes] | None, namespace: str) -> ServerTLS:
    if data is None:
        raise ConfigError(
            f"no fleet API certificate in namespace {namespace!r} (Secret {TLS_SECRET}); "
            f"run: modelfleet fleet-ca init --namespace {namespace}"
        )
    missing = [k for k in ("tls.crt", "tls.key", "ca.crt") if k not in data]
    if missing:
        raise ConfigError(f"Secret {namespace}/{TLS_SECRET} lacks {', '.join(missing)}")
    return ServerTLS(cert_pem=data["tls.crt"], key_pem=data["tls.key"], ca_pem=data["ca.crt"])


class FleetSecrets:
    """The fleet's two Secrets in ``namespace``, through :class:`~modelfleet.kube.KubeClient`."""

    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace

    async def _read(self, name: str) -> dict[str, bytes] | None:
        try:
            secret = await self.kube.get(core_path("secrets", self.namespace, name))
        except ApiError as exc:
            if exc.not_found:
                return None
            raise ClusterError(f"cannot read Secret {self.namespace}/{name}: {exc}") from exc
        return _decode(secret)

    async def _write(self, name: str, data: dict[str, bytes], type_: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": self.namespace, "labels": LABELS},
            "type": type_,
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        path = core_path("secrets", self.namespace)
        try:
            await self.kube.create(path, body)
        except ApiError as exc:
            if not exc.conflict:
                raise ClusterError(f"cannot create Secret {self.namespace}/{name}: {exc}") from exc
            try:
                await self.kube.replace(f"{path}/{name}", body)
            except ApiError as exc2:
                raise ClusterError(
                    f"cannot update Secret {self.namespace}/{name}: {exc2}"
                ) from exc2

    async def fleet_ca(self) -> FleetCA:
        """The fleet CA from its Secret; a clear error when ``fleet-ca init`` has not run."""
        return _fleet_ca(await self._read(CA_SECRET), self.namespace)

    async def ensure_fleet_ca(self) -> tuple[FleetCA, bool]:
        """The existing fleet CA, or a new one stored in the Secret; ``(ca, created)``."""
        data = await self._read(CA_SECRET)
        if data is not None:
            return _fleet_ca(data, self.namespace), False
        ca = FleetCA.create()
        await self._write(CA_SECRET, {"ca.crt": ca.cert_pem, "ca.key": ca.key_pem}, "Opaque")
        return ca, True

    async def server_tls(self) -> ServerTLS:
        """The fleet API's TLS material from ``modelfleet-fleet-api-tls``."""
        return _server_tls(await self._read(TLS_SECRET), self.namespace)

    async def current_server_tls(self) -> ServerTLS | None:
        """The stored server TLS material, or None when there is none yet."""
        try:
            return await self.server_tls()
        except ConfigError:
            return None

    async def issue_server_tls(
        self,
        ca: FleetCA,
        sans: Sequence[str] = DEFAULT_SANS,
        *,
        validity: dt.timedelta = DEFAULT_SERVER_VALIDITY,
    ) -> IssuedCert:
        """Issue the fleet API's server certificate and store it (replacing any previous one)."""
        issued = ca.issue_server(sans, validity=validity)
        await self._write(
            TLS_SECRET,
            {"tls.crt": issued.cert_pem, "tls.key": issued.key_pem, "ca.crt": ca.cert_pem},
            "kubernetes.io/tls",
        )
        return issued
