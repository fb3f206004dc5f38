"""The one list → watch → relist-on-410 → backoff loop that mirrors a resource into memory.

A :class:`Reflector` lists (paginated), hands the full set to its :class:`Sink`, then watches from
the list's resourceVersion with bookmarks, handing each change over in order. On 410 Gone it lists
again (the sink's ``replace`` forgets what was deleted meanwhile); on any other failure it retries
from the same resourceVersion after a capped exponential backoff (0.5 s doubling to 10 s, reset
by the next event). Used by the operator (EdgeGateways) and the fleet API (EdgeGateways and
ModelReleases).

:attr:`Reflector.synced` is set after the first list. :attr:`Reflector.healthy` says whether the
mirror can be trusted: false before the first list, and once the API server has been unreachable
for longer than ``max_staleness`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelfleet.kube.client import custom_path
from modelfleet.kube.errors import ApiError, WatchExpired

if TYPE_CHECKING:
    from modelfleet.kube.client import KubeClient

log = logging.getLogger(__name__)

Handler = Callable[[Mapping[str, Any]], None]

BACKOFF_START = 0.5
BACKOFF_MAX = 10.0


@dataclass(frozen=True)
class Sink:
    """Where one resource's objects go: the full set after a list, then single changes."""

    plural: str
    replace: Callable[[list[Any]], None]
    upsert: Handler
    delete: Handler
    each: Callable[[dict[str, Any]], Any] | None = None
    """Applied to each listed object as its page arrives; ``replace`` then gets the results
    (e.g. parsed views), so a large list is never held as raw objects all at once."""


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
        path: str | None = None,
    ) -> None:
        self.client = client
        self.sink = sink
        self.namespace = namespace
        self.path = path or custom_path(sink.plural, namespace)
        self.max_staleness = max_staleness
        self.synced = asyncio.Event()
        self._on_event = on_event
        self._connected = False
        self._down_since: float | None = time.monotonic()
        self.restarts = 0

    @property
    def where(self) -> str:
        return f"{self.sink.plural} in {self.namespace or 'all namespaces'}"

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
        backoff = BACKOFF_START
        resource_version = ""
        while True:
            try:
                if not resource_version:
                    if self.sink.each is None:
                        items, resource_version = await self.client.list_all(self.path)
                    else:
                        items, resource_version = await self.client.list_all(
                            self.path, each=self.sink.each
                        )
                    self.sink.replace(items)
                    self._up()
                    if not self.synced.is_set():
                        log.info("listed %d %s", len(items), self.where)
                    self.synced.set()
                self._up()
                async for event in self.client.watch(self.path, resource_version):
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
                    backoff = BACKOFF_START
            except WatchExpired:
                log.info("%s: watch expired; listing again", self.where)
                resource_version = ""
                self.restarts += 1
            except ApiError as exc:
                self._down()
                self.restarts += 1
                log.warning("%s: watch failed (%s); retrying in %.1fs", self.where, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
