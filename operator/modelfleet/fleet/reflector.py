"""List-then-watch loops that keep the :class:`~modelfleet.fleet.index.FleetIndex` in step with
the API server, one per resource (EdgeGateways, ModelReleases).

Each loop lists (paginated), replaces the index's set, then watches from the list's
resourceVersion with bookmarks; on 410 Gone it lists again, on any other failure it retries with
capped exponential backoff. :attr:`Reflector.healthy` says whether the view can be trusted: it is
false before the first list and once the API server has been unreachable for longer than
``max_staleness`` seconds (the server then answers 503 rather than serve a stale identity map).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelfleet.fleet.kube import KubeClient, UpstreamError, WatchExpired, resource_path

log = logging.getLogger(__name__)

Handler = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True)
class Sink:
    """Where one resource's objects go: the full set after a list, then single changes."""

    plural: str
    replace: Callable[[list[dict[str, Any]]], None]
    upsert: Handler
    delete: Handler


class Reflector:
    """Keeps one resource of one namespace (or all, with ``namespace=None``) mirrored."""

    def __init__(
        self,
        client: KubeClient,
        sink: Sink,
        namespace: str | None,
        *,
        max_staleness: float = 60.0,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.sink = sink
        self.namespace = namespace
        self.max_staleness = max_staleness
        self.synced = asyncio.Event()
        self._on_event = on_event
        self._connected = False
        self._down_since: float | None = time.monotonic()
        self.restarts = 0

    @property
    def healthy(self) -> bool:
        if not self.synced.is_set():
            return False
        if self._connected or self._down_since is None:
            return True
        return time.monotonic() - self._down_since < self.max_staleness

    def _up(self) -> None:
        self._connected = True
        self._down_since = None

    def _down(self) -> None:
        self._connected = False
        if self._down_since is None:
            self._down_since = time.monotonic()

    async def run(self) -> None:
        """Mirror forever (cancel to stop)."""
        path = resource_path(self.sink.plural, self.namespace)
        backoff = 0.5
        resource_version = ""
        while True:
            try:
                if not resource_version:
                    items, resource_version = await self.client.list_all(path)
                    self.sink.replace(items)
                    self._up()
                    self.synced.set()
                    log.info("listed %d %s", len(items), self.sink.plural)
                self._up()
                async for event in self.client.watch(path, resource_version):
                    kind = str(event.get("type"))
                    obj = event.get("object") or {}
                    rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if rv:
                        resource_version = str(rv)
                    if kind in ("ADDED", "MODIFIED"):
                        self.sink.upsert(obj)
                    elif kind == "DELETED":
                        self.sink.delete(obj)
                    if self._on_event is not None:
                        self._on_event(kind)
                    backoff = 0.5
            except WatchExpired:
                log.info("%s watch expired; listing again", self.sink.plural)
                resource_version = ""
                self.restarts += 1
            except UpstreamError as exc:
                self._down()
                self.restarts += 1
                log.warning("%s watch: %s; retrying in %.1fs", self.sink.plural, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
