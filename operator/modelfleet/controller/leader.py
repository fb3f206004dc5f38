"""Leader election with a ``coordination.k8s.io/v1`` Lease, so two operator replicas can run.

kopf has peering (which pauses operators of a lower priority) but no leader election; the Lease is
what Kubernetes users know: ``holderIdentity``, ``leaseDurationSeconds``, ``acquireTime``,
``renewTime``, ``leaseTransitions``, read by ``kubectl get lease``. The algorithm is client-go's:

* a candidate reads the Lease every ``retry`` seconds. It takes it when nobody holds it
  (``holderIdentity`` empty: released), or when the record has not changed for
  ``leaseDurationSeconds`` *by the candidate's own clock* since it first saw that record (no clock
  comparison between machines). Every write is an update with the ``resourceVersion`` it read, so
  of two candidates at most one wins; the other gets 409 and keeps waiting.
* the holder renews every ``renew`` seconds (a third of the duration). It gives the lease up, by
  exiting the process, when another identity holds it or when no renewal has succeeded for
  ``renew_deadline`` seconds (two thirds of the duration): well before a candidate, which starts
  counting only once it has seen the last renewal, may take over. A watchdog thread enforces the
  deadline even when the event loop is stuck.
* on a graceful stop the holder releases: ``holderIdentity`` empty, ``leaseDurationSeconds`` 1,
  so a candidate takes over at its next read instead of waiting for the lease to expire.

Only the holder runs kopf (see :mod:`modelfleet.controller.runner`): a candidate writes nothing
but its attempts on the Lease.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelfleet.controller.metrics import LEADER
from modelfleet.kube import ApiError, KubeClient

log = logging.getLogger(__name__)


def default_identity() -> str:
    """``$POD_NAME`` (else the host name) plus a random suffix: unique per process."""
    base = os.environ.get("POD_NAME") or socket.gethostname() or "modelfleet-operator"
    return f"{base}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseSettings:
    """Which Lease, who we are, and how long a holder keeps it without renewing."""

    name: str = "modelfleet-operator"
    namespace: str = "modelfleet-system"
    duration: float = 15.0
    identity: str = field(default_factory=default_identity)

    @property
    def renew(self) -> float:
        """How often the holder renews."""
        return self.duration / 3

    @property
    def renew_deadline(self) -> float:
        """The holder gives up when no renewal succeeded for this long."""
        return self.duration * 2 / 3

    @property
    def retry(self) -> float:
        """How often a candidate reads the Lease (and a holder retries a failed renewal)."""
        return min(2.0, self.duration / 7.5)

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"


class LeadershipLost(Exception):
    """Another identity holds the Lease, or it could not be renewed in time."""


def micro_time(when: dt.datetime | None = None) -> str:
    """A Kubernetes MicroTime: RFC 3339 UTC with microseconds."""
    return (when or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(spec: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        spec.get(k)
        for k in (
            "holderIdentity",
            "leaseDurationSeconds",
            "acquireTime",
            "renewTime",
            "leaseTransitions",
        )
    )


class LeaderElector:
    """Acquire, hold and release one Lease through :class:`KubeClient` (see the module doc)."""

    def __init__(
        self,
        client: KubeClient,
        settings: LeaseSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.settings = settings
        self._clock = clock
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self.renewed_at: float | None = None
        """Monotonic time at which the last successful renewal was *sent* (None: not held)."""

    @property
    def identity(self) -> str:
        return self.settings.identity

    def _body(self, spec: dict[str, Any], resource_version: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.settings.name, "namespace": self.settings.namespace}
        if resource_version is not None:
            meta["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": spec,
        }

    async def try_acquire(self) -> bool:
        """One attempt to take or renew the Lease; True when this process holds it now."""
        sent = self._clock()
        now = micro_time()
        duration = max(1, round(self.settings.duration))
        try:
            lease = await self.client.get(self.settings.path)
        except ApiError as exc:
            if not exc.not_found:
                raise
            created: dict[str, Any] = {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": duration,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            }
            try:
                await self.client.request(
                    "POST", self.settings.path.rsplit("/", 1)[0], body=self._body(created, None),
                    kind="lease",
                )  # fmt: skip
            except ApiError as exc2:
                if exc2.conflict:
                    return False  # another candidate created it first
                raise
            self._held(created, sent)
            return True
        spec: dict[str, Any] = dict(lease.get("spec") or {})
        record = _record(spec)
        if record != self._observed:
            self._observed, self._observed_at = record, self._clock()
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity:
            held_for = float(spec.get("leaseDurationSeconds") or self.settings.duration)
            if self._clock() - self._observed_at < held_for:
                self.renewed_at = None
                LEADER.set(0)
                return False
        new = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": duration,
            "renewTime": now,
            "acquireTime": spec.get("acquireTime") if holder == self.identity else now,
            "leaseTransitions": int(spec.get("leaseTransitions") or 0)
            + (0 if holder == self.identity else 1),
        }
        version = str((lease.get("metadata") or {}).get("resourceVersion", ""))
        try:
            await self.client.request(
                "PUT", self.settings.path, body=self._body(new, version), kind="lease"
            )
        except ApiError as exc:
            if exc.conflict:
                return False  # written by someone else since we read it
            raise
        if holder != self.identity:
            log.info(
                "acquired Lease %s/%s as %s (previous holder %r)",
                self.settings.namespace, self.settings.name, self.identity, holder or None,
            )  # fmt: skip
        self._held(new, sent)
        return True

    def _held(self, spec: dict[str, Any], sent: float) -> None:
        self._observed, self._observed_at = _record(spec), self._clock()
        self.renewed_at = sent
        LEADER.set(1)

    async def acquire(self) -> None:
        """Wait until this process holds the Lease."""
        log.info(
            "waiting for Lease %s/%s as %s (standby: no handlers run until it is held)",
            self.settings.namespace, self.settings.name, self.identity,
        )  # fmt: skip
        while True:
            try:
                if await self.try_acquire():
                    return
            except ApiError as exc:
                log.warning("leader election: %s", exc)
            await asyncio.sleep(self.settings.retry)

    async def hold(self) -> None:
        """Renew until the Lease is lost; then raise :class:`LeadershipLost`."""
        while True:
            await asyncio.sleep(self.settings.renew)
            while True:
                try:
                    if await self.try_acquire():
                        break
                    raise LeadershipLost(f"Lease {self.settings.name} is held by another replica")
                except ApiError as exc:
                    log.warning("leader election: renewing: %s", exc)
                self._check_deadline()
                await asyncio.sleep(self.settings.retry)

    def _check_deadline(self) -> None:
        if (
            self.renewed_at is None
            or self._clock() - self.renewed_at > self.settings.renew_deadline
        ):
            raise LeadershipLost(
                f"Lease {self.settings.name} not renewed for {self.settings.renew_deadline:g}s"
            )

    def watchdog(self, on_lost: Callable[[str], None], *, every: float = 0.5) -> threading.Event:
        """A daemon thread calling ``on_lost`` once the renew deadline passes (a stuck loop
        cannot renew, and must stop acting as leader before a candidate takes over); set the
        returned event to stop it."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(every):
                try:
                    self._check_deadline()
                except LeadershipLost as exc:
                    if not stop.is_set():
                        on_lost(str(exc))
                    return

        threading.Thread(target=run, name="lease watchdog", daemon=True).start()
        return stop

    async def release(self) -> None:
        """Give the Lease up (when held): holder empty, so a candidate takes it at once."""
        try:
            lease = await self.client.get(self.settings.path)
            spec: dict[str, Any] = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != self.identity:
                return
            spec.update(
                {"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": micro_time()}
            )
            version = str((lease.get("metadata") or {}).get("resourceVersion", ""))
            await self.client.request(
                "PUT", self.settings.path, body=self._body(spec, version), kind="lease"
            )
            log.info("released Lease %s/%s", self.settings.namespace, self.settings.name)
        except ApiError as exc:
            log.warning("could not release Lease %s: %s (it expires on its own)",
                        self.settings.name, exc)  # fmt: skip
        finally:
            self.renewed_at = None
            LEADER.set(0)
