"""Test helpers that reach the API server: the fleet PKI through :mod:`modelfleet.kube`
(:func:`fleet_pki`), and the Events about an object, read once (:func:`object_events`) or
waited for (:func:`wait_for_events`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from modelfleet.enrollment.pki import FleetCA
from modelfleet.fleet.secrets import FleetSecrets
from modelfleet.kube import KubeClient, load_access

T = TypeVar("T")


def with_kube(kubeconfig: Path, work: Callable[[KubeClient], Awaitable[T]]) -> T:
    """``work(kube)`` on a :class:`KubeClient` of ``kubeconfig``, from synchronous test code."""

    async def run() -> T:
        async with KubeClient(load_access(kubeconfig)) as kube:
            return await work(kube)

    return asyncio.run(run())


def fleet_pki(kubeconfig: Path, namespace: str) -> FleetCA:
    """The fleet CA of ``namespace`` (created when missing) and a fleet API server certificate
    for localhost and 127.0.0.1, stored in their Secrets as ``modelfleet fleet-ca init`` does."""

    async def run() -> FleetCA:
        async with KubeClient(load_access(kubeconfig)) as kube:
            store = FleetSecrets(kube, namespace)
            ca, _ = await store.ensure_fleet_ca()
            await store.issue_server_tls(ca, ["localhost", "127.0.0.1"])
            return ca

    return asyncio.run(run())


def object_events(core: Any, namespace: str, name: str) -> list[dict[str, str]]:
    """``{"type", "reason", "message"}`` of the Events about object ``name`` in ``namespace``
    (``core``: a ``kubernetes.client.CoreV1Api``), oldest first."""
    items = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    ordered = sorted(
        items.items,
        key=lambda e: str(e.last_timestamp or e.event_time or e.metadata.creation_timestamp),
    )
    return [{"type": e.type, "reason": e.reason, "message": e.message or ""} for e in ordered]


def wait_for_events(
    core: Any,
    namespace: str,
    name: str,
    reason: str,
    *,
    type: str | None = None,
    containing: str = "",
    timeout: float = 30.0,
) -> list[dict[str, str]]:
    """The Events about ``name`` with ``reason`` (of ``type``, whose message contains
    ``containing``), once there is at least one.

    An Event is posted after the status change it reports (the operator writes status first),
    so reading Events once right after a status change can miss it: this waits, and after
    ``timeout`` seconds fails naming the Event it waited for and listing the Events there are."""
    deadline = time.monotonic() + timeout
    while True:
        seen = object_events(core, namespace, name)
        found = [
            e for e in seen
            if e["reason"] == reason and type in (None, e["type"]) and containing in e["message"]
        ]  # fmt: skip
        if found:
            return found
        if time.monotonic() >= deadline:
            wanted = " ".join(filter(None, [type, f"Event {reason!r}"]))
            if containing:
                wanted += f" whose message contains {containing!r}"
            listed = "; ".join(f"{e['type']} {e['reason']}: {e['message']}" for e in seen)
            raise AssertionError(
                f"no {wanted} about {namespace}/{name} within {timeout:.0f}s; "
                f"its Events: {listed or 'none'}"
            )
        time.sleep(0.2)
