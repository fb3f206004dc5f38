"""Events on EdgeGateways whose certificate fingerprints conflict, so people see why and who.

The index (:class:`~modelfleet.fleet.index.FleetIndex`) reports every change of a fingerprint's
claimants while more than one EdgeGateway claims it. :class:`ConflictEvents` turns each into
Kubernetes Events: ``Warning DuplicateFingerprint`` on every claimant, naming the others, and
``Normal DuplicateFingerprintResolved`` on the one left when the others let go. Posting is best
effort (an Event that cannot be written is logged; identity never depends on it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from modelfleet.api.constants import API_VERSION, EDGEGATEWAY_KIND
from modelfleet.fleet.index import FleetIndex, Key
from modelfleet.kube import ApiError, KubeClient, core_path

log = logging.getLogger(__name__)

COMPONENT = "modelfleet-fleet-api"
REASON_CONFLICT = "DuplicateFingerprint"
REASON_RESOLVED = "DuplicateFingerprintResolved"


@dataclass(frozen=True)
class GatewayEvent:
    """One Event to post about one EdgeGateway."""

    namespace: str
    name: str
    uid: str
    type: str  # Normal | Warning
    reason: str
    message: str

    def body(self, now: dt.datetime, instance: str) -> dict[str, Any]:
        stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        involved = {
            "apiVersion": API_VERSION,
            "kind": EDGEGATEWAY_KIND,
            "namespace": self.namespace,
            "name": self.name,
        }
        if self.uid:
            involved["uid"] = self.uid
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{self.name}.", "namespace": self.namespace},
            "involvedObject": involved,
            "type": self.type,
            "reason": self.reason,
            "message": self.message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": instance[:128],
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }


def _names(keys: frozenset[Key] | set[Key]) -> str:
    return ", ".join(f"{ns}/{name}" for ns, name in sorted(keys))


def conflict_events(
    index: FleetIndex, fingerprint: str, before: frozenset[Key], after: frozenset[Key]
) -> Iterator[GatewayEvent]:
    """The Events one change of a fingerprint's claimants calls for."""
    short = fingerprint[:19] + "…"

    def event(key: Key, type_: str, reason: str, message: str) -> GatewayEvent:
        entry = index.gateways.get(key)
        return GatewayEvent(key[0], key[1], entry.uid if entry else "", type_, reason, message)

    if len(after) > 1:
        for key in sorted(after):
            yield event(
                key, "Warning", REASON_CONFLICT,
                f"spec.certificateFingerprint {short} is also claimed by EdgeGateway "
                f"{_names(after - {key})}; the fleet API refuses this certificate until only "
                "one EdgeGateway claims it (re-enroll the gateway that should not share it)",
            )  # fmt: skip
    elif len(before) > 1:
        for key in sorted(after):
            yield event(
                key, "Normal", REASON_RESOLVED,
                f"spec.certificateFingerprint {short} is no longer claimed by "
                f"{_names(before - after)}; this gateway's certificate is accepted again",
            )  # fmt: skip


class ConflictEvents:
    """Queues fingerprint-conflict changes from the index and posts their Events."""

    def __init__(self, kube: KubeClient | None) -> None:
        self.kube = kube
        self.index: FleetIndex | None = None
        self._queue: asyncio.Queue[GatewayEvent] = asyncio.Queue(maxsize=10_000)
        self._instance = f"{socket.gethostname()}/{os.getpid()}"
        self._refused = False

    def claims_changed(
        self, fingerprint: str, before: frozenset[Key], after: frozenset[Key]
    ) -> None:
        if self.index is None:
            return
        for event in conflict_events(self.index, fingerprint, before, after):
            if self._queue.full():
                log.warning("dropping Event for %s/%s: queue full", event.namespace, event.name)
                continue
            self._queue.put_nowait(event)

    async def run(self) -> None:
        """Post queued Events until cancelled."""
        while True:
            event = await self._queue.get()
            await self.post(event)

    async def post(self, event: GatewayEvent) -> None:
        if self.kube is None:
            return
        body = event.body(dt.datetime.now(dt.UTC), self._instance)
        try:
            await self.kube.request(
                "POST", core_path("events", event.namespace), body=body, timeout=10.0, kind="event"
            )
        except ApiError as exc:
            level = logging.DEBUG if self._refused else logging.WARNING
            self._refused = self._refused or exc.status == 403
            log.log(
                level, "cannot post Event %s on EdgeGateway %s/%s: %s",
                event.reason, event.namespace, event.name, exc,
            )  # fmt: skip
