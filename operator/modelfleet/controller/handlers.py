"""The kopf registrations of the operator: a release index, one event handler, one timer.

* ``@kopf.index`` on ModelReleases (parsed views by namespace, for conflict detection); the
  EdgeGateways come from :class:`~modelfleet.controller.gateways.GatewayCache` (one list + watch;
  its docstring says why not a ``kopf.index``): no gateway ever gets a handler, timer or daemon;
* ``@kopf.on.event`` on ModelReleases: reacts at once to what needs it (a new spec generation, a
  manual action, a release never seen) and forgets deleted ones;
* ``@kopf.timer`` per ModelRelease, every ``interval`` seconds: re-evaluates gates and time-based
  rules (bake, progress deadline) from the timestamps in status;
* ``@kopf.index`` on TrustPolicies (cluster-scoped): each policy's ``deniedDigests``, which
  ``decide`` turns into ``status.stable.revoked`` (:attr:`FleetView.revocations`), and its
  ``releaseChecklist`` (:attr:`FleetView.checklists`, the go-live gate), and
  ``@kopf.on.event`` on TrustPolicies: a changed policy re-decides every release naming it at
  once, so revoking the stable shows in its status and in what gateways are told without
  waiting for the timer.

Every handler parses, calls :class:`~modelfleet.controller.reconcile.Reconciler`, and maps errors
at :func:`~modelfleet.controller.errors.kopf_boundary`. Nothing is decided before the gateway
cache has listed every watched namespace.

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

from modelfleet.api import GROUP, VERSION, parse_release
from modelfleet.api.policy import PolicyView, denied_digests, policy_view
from modelfleet.controller.errors import kopf_boundary
from modelfleet.controller.gateways import GatewayCache
from modelfleet.controller.reconcile import Reconciler, needs_attention
from modelfleet.core import Release
from modelfleet.core.checklist import ChecklistItem
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
    gateways: GatewayCache | None = None
    default_checklist: frozenset[ChecklistItem] = frozenset()
    """The cluster-wide release checklist (``--release-checklist``), for policies that do not
    set ``spec.releaseChecklist``."""

    def ready(self) -> tuple[bool, str]:
        """``/readyz``: started, and the EdgeGateways of every watched namespace listed."""
        if self.reconciler is None or self.gateways is None:
            return False, "starting"
        if not self.gateways.synced.is_set():
            return False, "edgegateways not listed yet"
        return True, "ready"


def indexed_policy(body: Mapping[str, Any]) -> PolicyView:
    """A TrustPolicy as the policy index holds it. An unreadable ``releaseChecklist`` requires
    every item (fail closed): the releases naming the policy stay Blocked, each naming the
    items, and the error is logged with the field."""
    try:
        return policy_view(body)
    except ConfigError as exc:
        log.error("%s; requiring every release checklist item until it is fixed", exc)
        return PolicyView(denied_digests(body), frozenset(ChecklistItem))


def _fleet(
    runtime: Runtime,
    gateways: GatewayCache,
    releases: kopf.Index[str, IndexedRelease],
    policies: kopf.Index[str, PolicyView],
) -> Any:
    known = {name: next(iter(store)) for name, store in policies.items() if store}

    def view(namespace: str) -> FleetView:
        return FleetView(
            tally=gateways.tally(namespace),
            releases=tuple(r.release for r in releases.get(namespace, ())),
            revocations={name: p.denied for name, p in known.items()},
            checklists={n: p.checklist for n, p in known.items() if p.checklist is not None},
            default_checklist=runtime.default_checklist,
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

    @kopf.index(GROUP, VERSION, "modelreleases", id="releases", registry=registry)
    def releases(
        *, body: kopf.Body, namespace: str | None, uid: str, **_: Any
    ) -> dict[str, IndexedRelease] | None:
        try:
            return {namespace or "": IndexedRelease(uid, parse_release(body))}
        except ConfigError:
            return None  # reported by the event handler

    @kopf.index(GROUP, VERSION, "trustpolicies", id="policies", registry=registry)
    def policies(*, body: kopf.Body, name: str | None, **_: Any) -> dict[str, PolicyView]:
        return {name or "": indexed_policy(body)}

    @kopf.on.event(GROUP, VERSION, "trustpolicies", id="policy-event", registry=registry)
    async def policy_event(*, name: str | None, type: str | None, **kwargs: Any) -> None:
        reconciler, gateways = runtime.reconciler, runtime.gateways
        if type is None or reconciler is None or gateways is None:
            return  # the initial listing: the timers look at every release anyway
        await gateways.synced.wait()
        release_index: kopf.Index[str, IndexedRelease] = kwargs["releases"]
        fleet = _fleet(runtime, gateways, release_index, kwargs["policies"])
        for namespace, store in list(release_index.items()):
            for item in list(store):
                if item.release.spec.trust_policy != name or reconciler.busy(item.uid):
                    continue
                log.info(
                    "TrustPolicy %s changed: deciding ModelRelease %s/%s again",
                    name, namespace, item.release.name,
                )  # fmt: skip
                with kopf_boundary():
                    await reconciler.refresh(namespace, item.release.name, fleet)

    @kopf.on.event(GROUP, VERSION, "modelreleases", id="release-event", registry=registry)
    async def release_event(*, body: kopf.Body, type: str, uid: str, **kwargs: Any) -> None:
        reconciler, gateways = runtime.reconciler, runtime.gateways
        if reconciler is None or gateways is None:
            return
        if type == "DELETED":
            reconciler.forget(uid)
            return
        raw: Mapping[str, Any] = dict(body)
        if not needs_attention(raw) or reconciler.busy(uid):
            return
        await gateways.synced.wait()
        fleet = _fleet(runtime, gateways, kwargs["releases"], kwargs["policies"])
        with kopf_boundary():
            await reconciler.reconcile(raw, fleet, trigger="event")

    @kopf.timer(
        GROUP, VERSION, "modelreleases", id="release-timer", interval=interval, registry=registry
    )
    async def release_timer(
        *, body: kopf.Body, namespace: str | None, uid: str, **kwargs: Any
    ) -> None:
        reconciler, gateways = runtime.reconciler, runtime.gateways
        if reconciler is None or gateways is None or not gateways.synced.is_set():
            return
        release_index: kopf.Index[str, IndexedRelease] = kwargs["releases"]
        if not any(r.uid == uid for r in release_index.get(namespace or "", ())):
            return  # deleted (an orphaned timer), or not parsable: nothing to do
        if reconciler.busy(uid):
            return  # a verification is running; it decides when done
        fleet = _fleet(runtime, gateways, release_index, kwargs["policies"])
        with kopf_boundary():
            await reconciler.reconcile(dict(body), fleet, trigger="timer")

    _without_finalizers(registry)
    return registry
