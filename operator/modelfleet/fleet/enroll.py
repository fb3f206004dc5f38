"""Gateway enrollment: issue a client certificate, record its fingerprint, hand out a bundle.

:func:`enroll_gateway` creates (or, with ``renew``, re-keys) the EdgeGateway with
``spec.certificateFingerprint`` and returns a :class:`Bundle`: the client certificate and key,
the fleet CA, the agent's trust policy and ``agent.yaml`` in the format
:mod:`modelfleet.agent.config` loads. :func:`enroll_gateways` does the same for many gateways
with one CA in memory and a few concurrent API calls (the simulator enrolls thousands).
:func:`revoke_gateway` removes the fingerprint: the fleet API refuses that certificate from the
moment its watch sees the change.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelfleet.agent.config import AgentConfig, TLSConfig, write_agent_config
from modelfleet.errors import ClusterError, ConfigError
from modelfleet.fleet.kube import (
    GROUP,
    VERSION,
    KubeClient,
    UpstreamError,
    access_from_configuration,
    resource_path,
)
from modelfleet.fleet.pki import DEFAULT_CLIENT_VALIDITY, FleetCA
from modelfleet.fleet.protocol import GATEWAY_RE

log = logging.getLogger(__name__)

PLURAL = "edgegateways"
DEFAULT_FLEET_URL = "https://localhost:8443"
TRUST_POLICY_FILE = "trust-policy.yaml"


class EnrollmentError(ConfigError):
    """A gateway cannot be enrolled or revoked as asked (exists, missing, bad name or labels)."""


@dataclass(frozen=True)
class Bundle:
    """Everything one gateway agent needs, in memory; :meth:`write` puts it in a folder."""

    gateway: str
    namespace: str
    fingerprint: str
    not_after: dt.datetime
    fleet_url: str
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes
    trust_policy: bytes | None = None
    data_dir: str = "data"
    poll_interval: float = 30.0
    report_interval: float = 60.0
    labels: Mapping[str, str] = field(default_factory=dict)

    def agent_config(self, folder: Path) -> AgentConfig:
        """The agent configuration for this bundle placed in ``folder``."""
        folder = folder.resolve()
        data_dir = Path(self.data_dir).expanduser()
        return AgentConfig(
            gateway=self.gateway,
            namespace=self.namespace,
            fleet_url=self.fleet_url,
            tls=TLSConfig(
                cert=folder / "client.crt", key=folder / "client.key", ca=folder / "ca.crt"
            ),
            data_dir=data_dir if data_dir.is_absolute() else folder / data_dir,
            trust_policy=folder / TRUST_POLICY_FILE,
            poll_interval=self.poll_interval,
            report_interval=self.report_interval,
        )

    def write(self, folder: Path) -> Path:
        """Write ``agent.yaml``, ``client.crt``, ``client.key`` (0600), ``ca.crt`` and the trust
        policy into ``folder`` (created, 0700); returns the path of ``agent.yaml``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write(folder / "client.crt", self.cert_pem, 0o644)
        _write(folder / "client.key", self.key_pem, 0o600)
        _write(folder / "ca.crt", self.ca_pem, 0o644)
        if self.trust_policy is not None:
            _write(folder / TRUST_POLICY_FILE, self.trust_policy, 0o644)
        path = folder / "agent.yaml"
        write_agent_config(self.agent_config(folder), path)
        return path


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode)
    tmp.replace(path)


def check_labels(labels: Mapping[str, str]) -> None:
    """Kubernetes label syntax, checked before anything is created."""
    import re

    key_re = re.compile(
        r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
    )
    value_re = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
    for key, value in labels.items():
        if not key_re.match(key):
            raise EnrollmentError(f"label key {key!r} is not a valid Kubernetes label key")
        if not value_re.match(value):
            raise EnrollmentError(f"label {key}={value!r}: not a valid Kubernetes label value")


def parse_labels(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` as a dict (validated)."""
    labels: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise EnrollmentError(f"label {part!r} must be key=value")
        labels[key.strip()] = value.strip()
    check_labels(labels)
    return labels


def _objects(api: Any) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(api)


def enroll_gateway(
    api: Any,
    name: str,
    labels: Mapping[str, str] | None = None,
    *,
    namespace: str,
    ca: FleetCA,
    fleet_url: str = DEFAULT_FLEET_URL,
    trust_policy: bytes | None = None,
    validity: dt.timedelta = DEFAULT_CLIENT_VALIDITY,
    renew: bool = False,
    site: str | None = None,
    data_dir: str = "data",
    poll_interval: float = 30.0,
    report_interval: float = 60.0,
) -> Bundle:
    """Enroll one gateway; ``api`` is a ``kubernetes.client.ApiClient``.

    Creates the EdgeGateway (labels, ``spec.certificateFingerprint``). If it exists: with
    ``renew`` its fingerprint is replaced by the new certificate's (the old one is revoked at
    once; labels are merged), otherwise :class:`EnrollmentError`."""
    from kubernetes.client.exceptions import ApiException

    labels = dict(labels or {})
    _validate(name, labels, fleet_url)
    issued = ca.issue_client(name, validity=validity)
    spec: dict[str, Any] = {"certificateFingerprint": issued.fingerprint}
    if site:
        spec["site"] = site
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EdgeGateway",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }
    objects = _objects(api)
    try:
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    except ApiException as exc:
        if exc.status != 409:
            raise ClusterError(
                f"cannot create EdgeGateway {namespace}/{name}: {exc.status} {exc.reason}"
            ) from exc
        if not renew:
            raise EnrollmentError(
                f"EdgeGateway {namespace}/{name} already exists; use --renew to issue a new "
                "certificate (revokes the current one)"
            ) from exc
        patch = {"metadata": {"labels": labels}, "spec": spec}
        try:
            objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)
        except ApiException as exc2:
            raise ClusterError(
                f"cannot renew EdgeGateway {namespace}/{name}: {exc2.status} {exc2.reason}"
            ) from exc2
    log.info("enrolled gateway %s/%s (%s)", namespace, name, issued.fingerprint)
    return Bundle(
        gateway=name,
        namespace=namespace,
        fingerprint=issued.fingerprint,
        not_after=issued.not_after,
        fleet_url=fleet_url.rstrip("/"),
        cert_pem=issued.cert_pem,
        key_pem=issued.key_pem,
        ca_pem=ca.cert_pem,
        trust_policy=trust_policy,
        data_dir=data_dir,
        poll_interval=poll_interval,
        report_interval=report_interval,
        labels=labels,
    )


def _validate(name: str, labels: Mapping[str, str], fleet_url: str) -> None:
    if not GATEWAY_RE.fullmatch(name) or len(name) > 253:
        raise EnrollmentError(f"gateway name {name!r} is not a valid Kubernetes object name")
    check_labels(labels)
    if not fleet_url.startswith("https://"):
        raise EnrollmentError(f"--fleet-url must be an https:// URL, got {fleet_url!r}")


def enroll_gateways(
    api: Any,
    gateways: Sequence[tuple[str, Mapping[str, str]]],
    *,
    namespace: str,
    ca: FleetCA,
    concurrency: int = 32,
    fleet_url: str = DEFAULT_FLEET_URL,
    trust_policy: bytes | None = None,
    validity: dt.timedelta = DEFAULT_CLIENT_VALIDITY,
    renew: bool = False,
    data_dir: str = "data",
    poll_interval: float = 30.0,
    report_interval: float = 60.0,
) -> list[Bundle]:
    """Enroll many gateways (``(name, labels)`` pairs) with one CA; bundles in input order.

    Same rules as :func:`enroll_gateway`, but the EdgeGateways are created ``concurrency`` at a
    time over one pooled asyncio HTTP session with ``api``'s credentials (thousands per minute).
    Safe to call from inside a running event loop (it uses a thread of its own)."""
    for name, labels in gateways:
        _validate(name, labels, fleet_url)
    issued = [ca.issue_client(name, validity=validity) for name, _ in gateways]
    access = access_from_configuration(api.configuration)

    async def run() -> None:
        sem = asyncio.Semaphore(max(1, concurrency))
        async with KubeClient(access, connections=max(1, concurrency)) as kube:

            async def one(name: str, labels: Mapping[str, str], fp: str) -> None:
                body = {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "EdgeGateway",
                    "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
                    "spec": {"certificateFingerprint": fp},
                }
                async with sem:
                    try:
                        await kube.request("POST", resource_path(PLURAL, namespace), body=body)
                    except UpstreamError as exc:
                        if exc.status != 409:
                            raise ClusterError(
                                f"cannot create EdgeGateway {namespace}/{name}: {exc}"
                            ) from exc
                        if not renew:
                            raise EnrollmentError(
                                f"EdgeGateway {namespace}/{name} already exists; use renew to "
                                "issue a new certificate"
                            ) from exc
                        patch = {"metadata": {"labels": dict(labels)}, "spec": body["spec"]}
                        await kube.request(
                            "PATCH", resource_path(PLURAL, namespace, name), body=patch,
                            content_type="application/merge-patch+json",
                        )  # fmt: skip

            await asyncio.gather(
                *(one(n, lab, i.fingerprint) for (n, lab), i in zip(gateways, issued, strict=True))
            )

    errors: list[BaseException] = []

    def thread_main() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=thread_main, name="enroll-gateways")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    log.info("enrolled %d gateways in %s", len(gateways), namespace)
    return [
        Bundle(
            gateway=name,
            namespace=namespace,
            fingerprint=i.fingerprint,
            not_after=i.not_after,
            fleet_url=fleet_url.rstrip("/"),
            cert_pem=i.cert_pem,
            key_pem=i.key_pem,
            ca_pem=ca.cert_pem,
            trust_policy=trust_policy,
            data_dir=data_dir,
            poll_interval=poll_interval,
            report_interval=report_interval,
            labels=dict(labels),
        )
        for (name, labels), i in zip(gateways, issued, strict=True)
    ]


def revoke_gateway(api: Any, name: str, *, namespace: str) -> bool:
    """Remove ``spec.certificateFingerprint``; False if it had none. The gateway object and its
    status stay (delete it to forget the gateway)."""
    from kubernetes.client.exceptions import ApiException

    objects = _objects(api)
    try:
        obj = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as exc:
        if exc.status == 404:
            raise EnrollmentError(f"no EdgeGateway {namespace}/{name}") from exc
        raise ClusterError(f"cannot read EdgeGateway {namespace}/{name}: {exc.reason}") from exc
    if not (obj.get("spec") or {}).get("certificateFingerprint"):
        return False
    patch = [{"op": "remove", "path": "/spec/certificateFingerprint"}]
    try:
        objects.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, patch,
            _content_type="application/json-patch+json",
        )  # fmt: skip
    except ApiException as exc:
        raise ClusterError(f"cannot revoke EdgeGateway {namespace}/{name}: {exc.reason}") from exc
    log.info("revoked gateway %s/%s", namespace, name)
    return True


def list_gateways(api: Any, *, namespace: str) -> list[dict[str, Any]]:
    """The EdgeGateway objects of ``namespace``, sorted by name."""
    from kubernetes.client.exceptions import ApiException

    try:
        doc = _objects(api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    except ApiException as exc:
        raise ClusterError(f"cannot list EdgeGateways in {namespace}: {exc.reason}") from exc
    items: list[dict[str, Any]] = doc.get("items") or []
    return sorted(items, key=lambda o: str(o["metadata"]["name"]))
