"""Test helpers that reach the API server through :mod:`modelfleet.kube`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

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
