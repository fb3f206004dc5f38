"""Writing one report into EdgeGateway status, correct with several fleet API replicas: the path
of reports without a ``sequence`` (older agents), written before they are answered. Reports with
one are queued and written behind the answer (:mod:`modelfleet.fleet.reportqueue`).

Each replica plans a report (:func:`~modelfleet.fleet.coalesce.plan_status_patch`) against its
copy of the gateway's status. That copy comes from its watch and can lag a write another replica
just made for the same gateway (milliseconds normally, up to ``--max-staleness`` without the API
server). Two rules keep the result what one writer would have produced:

* **Every write carries the resourceVersion the plan was made on.** The API server applies it
  only to that version of the object; if another replica wrote meanwhile it answers 409 Conflict,
  and the report is planned again on a fresh read (the write it calls for may differ, or none).
* **Nothing is coalesced on an unconfirmed copy.** Before answering "nothing to write", the copy
  is confirmed by a read from the API server (a quorum read: it sees every write acknowledged
  before it); when it changed, the report is planned again on what was read.

* **A report is never written over a later one.** When the read after a 409 shows a ``lastSeen``
  (the receipt time, to the second) later than this report's receipt, another replica has
  written a report received after this one (an agent that gave up waiting and reported again
  elsewhere): this one is dropped, answered as coalesced.

So a report is never skipped because a stale copy already showed its state, and never written
over state it did not see: writes for one gateway land as if one replica had made them all, in
the order the gateway sent them (a gateway reports one request at a time; two reports received
by two replicas within the same second while both write are ordered by the API server).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from modelfleet.api.constants import EDGEGATEWAY_PLURAL
from modelfleet.fleet.coalesce import (
    CoalescePolicy,
    StatusPatch,
    format_time,
    parse_time,
    plan_status_patch,
)
from modelfleet.fleet.index import FleetIndex, GatewayEntry
from modelfleet.fleet.metrics import FleetMetrics
from modelfleet.kube import ApiError, KubeClient, custom_path
from modelfleet.protocol import ProtocolError, Report

log = logging.getLogger(__name__)

ATTEMPTS = 5


class StatusWriter:
    """Plans, confirms and writes reports for one replica (see the module docstring)."""

    def __init__(
        self,
        index: FleetIndex,
        kube: KubeClient | None,
        metrics: FleetMetrics,
        *,
        policy: CoalescePolicy,
        retry_after: int = 5,
    ) -> None:
        self.index = index
        self.kube = kube
        self.metrics = metrics
        self.policy = policy
        self.retry_after = retry_after

    async def apply(
        self, entry: GatewayEntry, report: Report, now: dt.datetime, active: bool
    ) -> StatusPatch | None:
        """The write made for ``report``, received at ``now`` from a gateway in an ``active``
        cohort (None: coalesced, on a confirmed copy of status)."""
        status: Mapping[str, Any] = entry.status
        version = entry.resource_version
        confirmed = self.kube is None
        for _attempt in range(ATTEMPTS):
            patch = plan_status_patch(
                status, report, now=now, in_active_cohort=active, policy=self.policy
            )
            if patch is None:
                if confirmed:
                    return None
                fresh = await self.read(entry, "confirm")
                confirmed = True
                if version_of(fresh) == version:
                    return None
                status, version = fresh.get("status") or {}, version_of(fresh)
                continue
            try:
                written = await self._kube().merge_patch_status(
                    EDGEGATEWAY_PLURAL,
                    entry.namespace,
                    entry.name,
                    patch.body(),
                    resource_version=version or None,
                )
            except ApiError as exc:
                if not exc.conflict:
                    raise self.refused(entry, exc) from exc
                log.debug("status of %s/%s changed meanwhile; planning again", *entry.key)
                fresh = await self.read(entry, "conflict")
                confirmed = True
                status, version = fresh.get("status") or {}, version_of(fresh)
                if superseded(status, now):
                    log.info(
                        "gateway %s/%s: report received at %s superseded by a later one "
                        "written meanwhile; not written", entry.namespace, entry.name,
                        format_time(now),
                    )  # fmt: skip
                    return None
                continue
            self.index.update_status(written)
            return patch
        raise ProtocolError(
            503,
            "upstream_unavailable",
            "the gateway's status kept changing while being written; retry later",
            Retry_After=str(self.retry_after),
        )

    async def patch(self, entry: GatewayEntry, patch: StatusPatch, version: str) -> dict[str, Any]:
        """Write ``patch`` if the EdgeGateway is still at ``version`` (else ApiError 409)."""
        return await self._kube().merge_patch_status(
            EDGEGATEWAY_PLURAL, entry.namespace, entry.name, patch.body(),
            resource_version=version or None,
        )  # fmt: skip

    def _kube(self) -> KubeClient:
        if self.kube is None:
            raise ProtocolError(503, "upstream_unavailable", "no API server configured")
        return self.kube

    async def read(self, entry: GatewayEntry, why: str) -> dict[str, Any]:
        """The EdgeGateway as the API server holds it now (and the index refreshed with it)."""
        self.metrics.status_rereads.labels(why).inc()
        try:
            obj = await self._kube().get(
                custom_path(EDGEGATEWAY_PLURAL, entry.namespace, entry.name)
            )
        except ApiError as exc:
            raise self.refused(entry, exc) from exc
        self.index.update_status(obj)
        return obj

    def refused(self, entry: GatewayEntry, exc: ApiError) -> ProtocolError:
        self.metrics.upstream_errors.inc()
        if exc.status == 404:
            return ProtocolError(403, "unknown_certificate", "the EdgeGateway no longer exists")
        if exc.status in (400, 422):
            return ProtocolError(
                422, "rejected", f"the API server refused the status: {exc.reason}"
            )
        log.warning("status write for %s/%s failed: %s", entry.namespace, entry.name, exc)
        return ProtocolError(
            503,
            "upstream_unavailable",
            "the API server is unavailable; nothing was written, retry later",
            Retry_After=str(self.retry_after),
        )


def superseded(status: Mapping[str, Any], received: dt.datetime) -> bool:
    """Whether ``status`` was written for a report received in a later second than this one
    (``lastSeen`` is the receipt time, to the second): writing this one would reorder them."""
    seen = parse_time(status.get("lastSeen"))
    return seen is not None and seen > received.replace(microsecond=0)


def version_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
