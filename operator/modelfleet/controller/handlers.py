"""The kopf registrations of the operator: two indexes, one event handler, one timer. Nothing else.

* ``@kopf.index`` on EdgeGateways (parsed views by namespace) and on ModelReleases (for conflict
  detection): gateways are never given a handler, timer or daemon of their own, so 10,000
  gateways cost one watch and 10,000 small dict entries;
* ``@kopf.on.event`` on ModelReleases: reacts at once to what needs it (a new spec generation, a
  manual action, a release never seen) and forgets deleted ones;
* ``@kopf.timer`` per ModelRelease, every ``interval`` seconds: re-evaluates gates and time-based
  rules (bake, progress deadline) from the timestamps in status.

Every handler parses, calls :class:`~modelfleet.controller.reconcile.Reconciler`, and maps errors
at :func:`~modelfleet.controller.errors.kopf_boundary`.

**No finalizers.** kopf puts a finalizer on every object a timer serves, so that the timer can be
stopped before the object goes. This operator's timer writes only status and is idempotent, and a
finalizer would block the deletion of a namespace while the operator is down; so the timer is
registered without one (:func:`_without_finalizers`). A timer orphaned by a deletion notices that
its release left the index and does nothing until the operator restarts.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from modelfleet.api import GROUP, VERSION, parse_gateway, parse_release
from modelfleet.controller.errors import kopf_boundary
from modelfleet.controller.metrics import INDEXED_GATEWAYS
from modelfleet.controller.reconcile import Reconciler, needs_attention
from modelfleet.core import Gateway, Release
from modelfleet.core.decide import FleetView
from modelfleet.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexedRelease:
    """A ModelRelease as the release index holds it."""

    uid: str
    release: Release


class Runtime:
    """What the handlers share; set up on operator startup (see :mod:`controller.runner`)."""

    reconciler: Reconciler | None = None


def _fleet(gateways: kopf.Index[str, Gateway], releases: kopf.Index[str, IndexedRelease]) -> Any:
    def view(namespace: str) -> FleetView:
        return FleetView(
            gateways=tuple(gateways.get(namespace, ())),
            releases=tuple(r.release for r in releases.get(namespace, ())),
        )

    return view


def _without_finalizers(registry: kopf.OperatorRegistry) -> None:
    """Register spawning handlers (the timer) without kopf's finalizer (module docstring)."""
    spawning = registry._spawning
    spawning._handlers[:] = [
        dataclasses.replace(h, requires_finalizer=False) for h in spawning._handlers
    ]


def build_registry(runtime: Runtime, interval: float) -> kopf.OperatorRegistry:
    """A fresh kopf registry with the operator's handlers."""
    registry = kopf.OperatorRegistry()

    @kopf.index(GROUP, VERSION, "edgegateways", id="gateways", registry=registry)
    def gateways(
        *, body: kopf.Body, name: str, namespace: str | None, **_: Any
    ) -> dict[str, Gateway] | None:
        try:
            return {namespace or "": parse_gateway(body)}
        except ConfigError as exc:
            log.warning("EdgeGateway %s/%s ignored: %s", namespace, name, exc.diagnostics())
            return None

    @kopf.index(GROUP, VERSION, "modelreleases", id="releases", registry=registry)
    def releases(
        *, body: kopf.Body, namespace: str | None, uid: str, **_: Any
    ) -> dict[str, IndexedRelease] | None:
        try:
            return {namespace or "": IndexedRelease(uid, parse_release(body))}
        except ConfigError:
            return None  # reported by the event handler

    @kopf.on.event(GROUP, VERSION, "modelreleases", id="release-event", registry=registry)
    async def release_event(*, body: kopf.Body, type: str, uid: str, **kwargs: Any) -> None:
        reconciler = runtime.reconciler
        if reconciler is None:
            return
        gateway_index: kopf.Index[str, Gateway] = kwargs["gateways"]
        INDEXED_GATEWAYS.set(sum(len(v) for v in gateway_index.values()))
        if type == "DELETED":
            reconciler.forget(uid)
            return
        raw: Mapping[str, Any] = dict(body)
        if not needs_attention(raw) or reconciler.busy(uid):
            return
        with kopf_boundary():
            await reconciler.reconcile(
                raw, _fleet(gateway_index, kwargs["releases"]), trigger="event"
            )

    @kopf.timer(
        GROUP, VERSION, "modelreleases", id="release-timer", interval=interval, registry=registry
    )
    async def release_timer(
        *, body: kopf.Body, namespace: str | None, uid: str, **kwargs: Any
    ) -> None:
        reconciler = runtime.reconciler
        if reconciler is None:
            return
        release_index: kopf.Index[str, IndexedRelease] = kwargs["releases"]
        if not any(r.uid == uid for r in release_index.get(namespace or "", ())):
            return  # deleted (an orphaned timer), or not parsable: nothing to do
        if reconciler.busy(uid):
            return  # a verification is running; it decides when done
        with kopf_boundary():
            await reconciler.reconcile(
                dict(body), _fleet(kwargs["gateways"], release_index), trigger="timer"
            )

    _without_finalizers(registry)
    return registry
