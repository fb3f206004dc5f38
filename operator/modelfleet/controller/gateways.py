"""The operator's view of the fleet: every EdgeGateway of the watched namespaces, parsed, in memory.

One list + watch per watched namespace (or one cluster-wide, filtered by the namespace patterns)
keeps one :class:`~modelfleet.core.tally.FleetTally` per namespace current. No handler, timer or
daemon runs per gateway: a report is one JSON decode, one
:func:`~modelfleet.api.gateway.readable_gateway` (a gateway whose status cannot be read in full is
kept with what can be read: assigned, not reporting) and one :meth:`FleetTally.put`, which moves
the counts that gateway is in. Decisions read those counts (:attr:`FleetView.tally`) instead of
walking the namespace's gateways, so a tick costs what changed since the last one. Only the
parsed gateways are kept, not the watched objects.

Why not ``kopf.index``: kopf holds every indexed object's worker until *all* objects are
indexed, through one shared condition that wakes every waiting worker on each object indexed.
That is quadratic in the fleet size at startup: with 10,000 EdgeGateways the operator had not
started handling releases after five minutes of CPU. ModelReleases (a few per namespace) are
still held in a ``kopf.index``.

Releases must never be decided on a partial fleet (an empty cohort passes its gates), so
:attr:`GatewayCache.synced` is set only once every watched namespace has been listed, and the
handlers wait for it.
"""

from __future__ import annotations

import asyncio
import fnmatch
import gc
import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from modelfleet.api import EDGEGATEWAY_PLURAL
from modelfleet.api.gateway import readable_gateway
from modelfleet.controller.metrics import FLEET, INDEXED_GATEWAYS, SILENT_AFTER_SECONDS
from modelfleet.core import Gateway
from modelfleet.core.tally import FleetTally
from modelfleet.errors import ConfigError
from modelfleet.kube import KubeClient, Reflector, Sink

log = logging.getLogger(__name__)


def _is_pattern(namespace: str) -> bool:
    return any(c in namespace for c in "*?[!")


class GatewayCache:
    """EdgeGateways by namespace, kept current by list + watch (see the module docstring)."""

    def __init__(self, client: KubeClient, namespaces: Sequence[str] | None) -> None:
        """``namespaces``: names or glob patterns; ``None`` for the whole cluster."""
        self._client = client
        self._patterns = tuple(namespaces) if namespaces else None
        cluster_wide = self._patterns is None or any(_is_pattern(n) for n in self._patterns)
        self._scopes: tuple[str | None, ...] = (
            (None,) if cluster_wide else tuple(self._patterns or ())
        )
        self._by_ns: dict[str, FleetTally] = {}
        self._listed: set[str | None] = set()
        self.synced = asyncio.Event()
        FLEET.track(self)

    def get(self, namespace: str) -> tuple[Gateway, ...]:
        """The gateways of ``namespace`` (a copy: O(gateways); deciding reads :meth:`tally`)."""
        tally = self._by_ns.get(namespace)
        return () if tally is None else tuple(tally.gateways())

    def tally(self, namespace: str) -> FleetTally:
        """The gateways of ``namespace`` and their counts (empty for an unknown namespace)."""
        tally = self._by_ns.get(namespace)
        return FleetTally(namespace, silent_after=SILENT_AFTER_SECONDS) if tally is None else tally

    def namespaces(self) -> list[str]:
        """The namespaces holding gateways now."""
        return sorted(self._by_ns)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_ns.values())

    def _watched(self, namespace: str) -> bool:
        if self._patterns is None:
            return True
        return any(fnmatch.fnmatchcase(namespace, p) for p in self._patterns)

    def _parse(self, obj: Mapping[str, Any]) -> Gateway | None:
        """The watched gateway ``obj`` is, as far as it can be read (None: not watched, or no
        name or labels)."""
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        if not self._watched(namespace):
            return None
        try:
            gateway, unreadable = readable_gateway(obj)
        except ConfigError as exc:  # no name or labels: no cohort can be known
            log.warning("EdgeGateway %s/%s ignored: %s", namespace, name, exc.diagnostics())
            return None
        if unreadable is not None:
            # Still counted, with what could be read: assigned but not reporting, never absent
            # (absent gateways leave their cohort, and gates pass on an empty cohort).
            log.warning(
                "EdgeGateway %s/%s: status partly unreadable, counted without it: %s",
                namespace, name, unreadable.diagnostics(),
            )  # fmt: skip
        return gateway

    def _put(self, obj: Mapping[str, Any]) -> None:
        gateway = self._parse(obj)
        if gateway is None:
            self._drop(obj)
        else:
            self._store(gateway)

    def _store(self, gateway: Gateway) -> None:
        tally = self._by_ns.get(gateway.namespace)
        if tally is None:
            tally = self._by_ns[gateway.namespace] = FleetTally(
                gateway.namespace, silent_after=SILENT_AFTER_SECONDS
            )
        tally.put(gateway)

    def _drop(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        tally = self._by_ns.get(str(meta.get("namespace") or ""))
        if tally is not None:
            tally.drop(str(meta.get("name") or ""))

    def _replace(self, scope: str | None, items: list[dict[str, Any]]) -> None:
        """A fresh list of ``scope`` (raw objects): forget what it no longer has."""
        self._install(scope, [self._parse(obj) for obj in items])

    def _install(self, scope: str | None, gateways: list[Gateway | None]) -> None:
        for namespace in [ns for ns in self._by_ns if scope is None or ns == scope]:
            del self._by_ns[namespace]
        for gateway in gateways:
            if gateway is not None:
                self._store(gateway)

    def reflectors(self) -> list[Reflector]:
        """One list + watch per scope (:class:`~modelfleet.kube.Reflector`)."""
        return [
            Reflector(
                self._client,
                Sink(
                    EDGEGATEWAY_PLURAL,
                    partial(self._listed_scope, scope),
                    self._put,
                    self._drop,
                    each=self._parse,  # parsed page by page: the raw list is never held
                ),
                scope,
                on_event=self._count,
            )
            for scope in self._scopes
        ]

    def _listed_scope(self, scope: str | None, gateways: list[Gateway | None]) -> None:
        self._install(scope, gateways)
        self._listed.add(scope)
        INDEXED_GATEWAYS.set(len(self))
        if self._listed.issuperset(self._scopes) and not self.synced.is_set():
            log.info("EdgeGateways listed: %d", len(self))
            # The fleet just parsed is long-lived and free of reference cycles: out of the cyclic
            # collector's scans (reference counting still frees each gateway once replaced), so
            # full collections do not walk 100,000 gateways' objects again and again.
            gc.collect()
            gc.freeze()
            self.synced.set()

    def _count(self, _kind: str) -> None:
        INDEXED_GATEWAYS.set(len(self))

    async def run(self) -> None:
        """Keep every scope listed and watched until cancelled."""
        await asyncio.gather(*(r.run() for r in self.reflectors()))
