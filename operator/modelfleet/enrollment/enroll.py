"""Gateway enrollment: issue a client certificate, record its fingerprint, hand out a bundle.

:func:`enroll_gateways` creates (or, with ``renew``, re-keys) EdgeGateways with
``spec.certificateFingerprint`` and returns one :class:`~modelfleet.enrollment.bundle.Bundle`
each: the client certificate and key, the fleet CA, the agent's trust policy and ``agent.yaml``.
Many gateways share one CA in memory and one :class:`~modelfleet.kube.KubeClient`, a few
requests in flight at once (the simulator enrolls thousands); :func:`enroll_gateway` is the
one-gateway case. :func:`revoke_gateway` removes the fingerprint: the fleet API refuses that
certificate from the moment its watch sees the change.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from modelfleet.enrollment.bundle import DEFAULT_FLEET_URL, Bundle
from modelfleet.enrollment.cluster import Exists, GatewayObjects, Missing
from modelfleet.enrollment.pki import DEFAULT_CLIENT_VALIDITY, FleetCA
from modelfleet.errors import ConfigError
from modelfleet.kube import KubeClient
from modelfleet.protocol.rules import GATEWAY_RE, matches

log = logging.getLogger(__name__)

#: Called after each gateway is enrolled: (how many are done, how many in all).
Progress = Callable[[int, int], None]

_LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


class EnrollmentError(ConfigError):
    """A gateway cannot be enrolled or revoked as asked (exists, missing, bad name or labels)."""


def check_labels(labels: Mapping[str, str]) -> None:
    """Kubernetes label syntax, checked before anything is created."""
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key):
            raise EnrollmentError(f"label key {key!r} is not a valid Kubernetes label key")
        if not _LABEL_VALUE.fullmatch(value):
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


def gateway_names(prefix: str, count: int) -> list[str]:
    """``count`` names ``prefix-0000``, ``prefix-0001``, ... (at least four digits, all the same
    width, so they sort in order)."""
    width = max(4, len(str(count - 1)))
    return [f"{prefix}-{i:0{width}d}" for i in range(count)]


def _validate(name: str, labels: Mapping[str, str], fleet_url: str) -> None:
    if not matches(GATEWAY_RE, name):
        raise EnrollmentError(f"gateway name {name!r} is not a valid Kubernetes object name")
    check_labels(labels)
    if not fleet_url.startswith("https://"):
        raise EnrollmentError(f"--fleet-url must be an https:// URL, got {fleet_url!r}")


async def enroll_gateways(
    kube: KubeClient,
    gateways: Sequence[tuple[str, Mapping[str, str]]],
    *,
    namespace: str,
    ca: FleetCA,
    concurrency: int = 16,
    fleet_url: str = DEFAULT_FLEET_URL,
    trust_policy: bytes | None = None,
    validity: dt.timedelta = DEFAULT_CLIENT_VALIDITY,
    renew: bool = False,
    site: str | None = None,
    data_dir: str = "data",
    poll_interval: float = 30.0,
    report_interval: float = 60.0,
    progress: Progress | None = None,
) -> list[Bundle]:
    """Enroll many gateways (``(name, labels)`` pairs) with one CA; bundles in input order.

    ``kube`` is an open :class:`~modelfleet.kube.KubeClient`. Every name and label is checked before
    anything is created. Each EdgeGateway is created with its labels and
    ``spec.certificateFingerprint``; if it exists, with ``renew`` its fingerprint is replaced by
    the new certificate's (the old one is revoked at once; labels are merged), otherwise
    :class:`EnrollmentError`. ``concurrency`` requests are in flight at once."""
    for name, labels in gateways:
        _validate(name, labels, fleet_url)
    if len({name for name, _ in gateways}) != len(gateways):
        raise EnrollmentError("a gateway name is given twice")
    objects = GatewayObjects(kube, namespace)
    settings = functools.partial(  # what every bundle of this run shares
        Bundle, namespace=namespace, fleet_url=fleet_url.rstrip("/"), ca_pem=ca.cert_pem,
        trust_policy=trust_policy, data_dir=data_dir, poll_interval=poll_interval,
        report_interval=report_interval,
    )  # fmt: skip
    slots = asyncio.Semaphore(max(1, concurrency))
    done = 0

    async def one(item: tuple[str, Mapping[str, str]]) -> Bundle:
        nonlocal done
        name, labels = item
        async with slots:
            issued = ca.issue_client(name, validity=validity)
            spec: dict[str, Any] = {"certificateFingerprint": issued.fingerprint}
            if site:
                spec["site"] = site
            await _put(objects, name, labels, spec, renew=renew)
        log.info("enrolled gateway %s/%s (%s)", namespace, name, issued.fingerprint)
        done += 1
        if progress is not None:
            progress(done, len(gateways))
        return settings(
            gateway=name, fingerprint=issued.fingerprint, not_after=issued.not_after,
            cert_pem=issued.cert_pem, key_pem=issued.key_pem, labels=dict(labels),
        )  # fmt: skip

    if len(gateways) <= 1:
        return [await one(g) for g in gateways]
    results = await asyncio.gather(*(one(g) for g in gateways), return_exceptions=True)
    for result in results:  # every gateway was tried; the first failure in input order is raised
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if isinstance(r, Bundle)]


async def _put(
    objects: GatewayObjects,
    name: str,
    labels: Mapping[str, str],
    spec: dict[str, Any],
    *,
    renew: bool,
) -> None:
    namespace = objects.namespace
    try:
        await objects.put(name, dict(labels), spec, renew=renew)
    except Exists as exc:
        raise EnrollmentError(
            f"EdgeGateway {namespace}/{name} already exists; use --renew to issue a new "
            "certificate (revokes the current one)"
        ) from exc


async def enroll_gateway(
    kube: KubeClient,
    name: str,
    labels: Mapping[str, str] | None = None,
    *,
    namespace: str,
    ca: FleetCA,
    **options: Any,
) -> Bundle:
    """Enroll one gateway (see :func:`enroll_gateways` for the options)."""
    (bundle,) = await enroll_gateways(
        kube, [(name, dict(labels or {}))], namespace=namespace, ca=ca, **options
    )
    return bundle


async def revoke_gateway(kube: KubeClient, name: str, *, namespace: str) -> bool:
    """Remove ``spec.certificateFingerprint``; False if it had none. The gateway object and its
    status stay (delete it to forget the gateway)."""
    objects = GatewayObjects(kube, namespace)
    try:
        obj = await objects.get(name)
    except Missing as exc:
        raise EnrollmentError(f"no EdgeGateway {namespace}/{name}") from exc
    if not (obj.get("spec") or {}).get("certificateFingerprint"):
        return False
    await objects.remove_fingerprint(name)
    log.info("revoked gateway %s/%s", namespace, name)
    return True


async def list_gateways(kube: KubeClient, *, namespace: str) -> list[dict[str, Any]]:
    """The EdgeGateway objects of ``namespace``, sorted by name."""
    items = await GatewayObjects(kube, namespace).list()
    return sorted(items, key=lambda o: str(o["metadata"]["name"]))
