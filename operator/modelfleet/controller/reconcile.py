"""One ModelRelease reconciliation: read, ``decide()`` (verify, ``decide()``), one status write.

The kopf handlers (:mod:`modelfleet.controller.handlers`) only call :meth:`Reconciler.reconcile`;
every rule lives in :func:`modelfleet.core.decide.decide`. What this module adds is the I/O
discipline that makes decisions safe to repeat and to interrupt:

* **one writer per release**: an asyncio lock per object uid serialises the timer and the
  event handler of one release;
* **never on stale data**: the freshest copy known (kopf's body, or what our last write
  returned) is decided on, and the status write carries ``metadata.resourceVersion``; a 409
  means someone else wrote first, so the object is read again and decided again (at most
  three times per call). A step can therefore never be promoted twice;
* **only changes are written**: ``decide`` returns the fields that changed; an empty change is
  no request at all, so a steady rollout costs no writes and advancing, aborting or rolling back
  is one write whatever the fleet size;
* **verify before telling anyone**: when ``decide`` asks for verification, the Verifying phase
  is written first, the artifact verified, and ``decide`` called again with the result on a
  fresh read of the object (and only if its generation is still the one verified);
* **events after the write**: a phase change becomes a Kubernetes Event only once its status is
  stored, so a retried decision does not repeat events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from modelfleet.api import MODELRELEASE_PLURAL, parse_release
from modelfleet.controller.kube import ApiError, KubeClient, custom_path
from modelfleet.controller.metrics import PHASE_CHANGES, RECONCILE_SECONDS, RECONCILES
from modelfleet.controller.patching import conditional, newer, status_merge_patch
from modelfleet.controller.source import SourceLookup
from modelfleet.controller.verifier import ArtifactVerifier
from modelfleet.core import Release, Verification, status_to_dict
from modelfleet.core.decide import Decision, Event, FleetView, decide
from modelfleet.core.gates import DEFAULT_TUNING, Tuning

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


class EventSink(Protocol):
    """Posts a Kubernetes Event about an object (kopf's poster in production)."""

    def __call__(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None: ...


FleetFn = Callable[[str], FleetView]
"""Namespace → the gateways and the releases of that namespace (from the kopf indexes)."""


@dataclass
class _ReleaseState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    latest: Mapping[str, Any] | None = None
    """The object as our last status write returned it (newer than kopf's body for a while)."""
    verified: tuple[int, str, Verification] | None = None
    """(generation, digest, result) of the last verification, reused if a write must be retried."""


def needs_attention(body: Mapping[str, Any]) -> bool:
    """Whether a watch event shows something to act on at once (else the timer is enough):
    no status yet, a spec generation not observed yet, or a manual action not yet run."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    if not status.get("phase"):
        return True
    if meta.get("generation") != status.get("observedGeneration"):
        return True
    annotations = meta.get("annotations") or {}
    action_id = annotations.get("modelfleet.dev/action-id")
    last = (status.get("rollout") or {}).get("lastActionId")
    return bool(annotations.get("modelfleet.dev/action")) and bool(action_id) and action_id != last


def _where(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata") or {}
    return f"ModelRelease {meta.get('namespace')}/{meta.get('name')}"


class Reconciler:
    """Decides and applies, one release at a time (see the module docstring)."""

    def __init__(
        self,
        client: KubeClient,
        verifier: ArtifactVerifier,
        sources: SourceLookup,
        events: EventSink,
        *,
        tuning: Tuning = DEFAULT_TUNING,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._verifier = verifier
        self._sources = sources
        self._events = events
        self._tuning = tuning
        self._clock = clock
        self._states: dict[str, _ReleaseState] = {}

    def forget(self, uid: str) -> None:
        """Drop what is remembered about a deleted release."""
        self._states.pop(uid, None)
        self._sources.forget(uid)

    def busy(self, uid: str) -> bool:
        """Whether a reconciliation of that release is running (e.g. a long verification)."""
        state = self._states.get(uid)
        return state is not None and state.lock.locked()

    async def reconcile(self, body: Mapping[str, Any], fleet: FleetFn, *, trigger: str) -> None:
        """Bring ``body``'s status one decision further; raises ModelfleetErrors to the boundary."""
        uid = str((body.get("metadata") or {}).get("uid", ""))
        state = self._states.setdefault(uid, _ReleaseState())
        outcome = "error"
        async with state.lock:
            started = time.perf_counter()
            try:
                outcome = await self._reconcile(body, state, fleet)
            finally:
                RECONCILE_SECONDS.observe(time.perf_counter() - started)
                RECONCILES.labels(trigger=trigger, outcome=outcome).inc()

    async def _reconcile(
        self, body: Mapping[str, Any], state: _ReleaseState, fleet: FleetFn
    ) -> str:
        obj = newer(body, state.latest) or body
        for _attempt in range(MAX_ATTEMPTS):
            try:
                return await self._once(obj, state, fleet)
            except ApiError as exc:
                if not exc.conflict:
                    raise
                log.debug("%s: changed while deciding; reading it again", _where(obj))
                obj = await self._read(obj)
        return "conflict"

    async def _read(self, obj: Mapping[str, Any]) -> Mapping[str, Any]:
        meta = obj.get("metadata") or {}
        fresh = await self._client.get(
            custom_path(MODELRELEASE_PLURAL, meta.get("namespace"), meta.get("name"))
        )
        return fresh

    async def _release(self, obj: Mapping[str, Any]) -> Release:
        release = parse_release(obj)
        source = await self._sources.lookup(obj, release.source)
        return release if source == release.source else replace(release, source=source)

    async def _once(self, obj: Mapping[str, Any], state: _ReleaseState, fleet: FleetFn) -> str:
        release = await self._release(obj)
        view = fleet(release.namespace)
        decision = decide(release, view, self._clock(), tuning=self._tuning)
        if decision.needs_verification:
            if decision.patch:
                obj = await self._write(obj, state, release, decision)
            verification = await self._verification(release, state)
            obj = await self._read(obj)
            release = await self._release(obj)
            if release.generation != verification.generation:
                log.info("%s: spec changed during verification; deciding again", _where(obj))
                return await self._once(obj, state, fleet)
            decision = decide(
                release, view, self._clock(), verification=verification, tuning=self._tuning
            )
        if not decision.patch:
            return "unchanged"
        await self._write(obj, state, release, decision)
        return "written"

    async def _verification(self, release: Release, state: _ReleaseState) -> Verification:
        spec = release.spec
        cached = state.verified
        if cached is not None and cached[:2] == (release.generation, spec.digest):
            return cached[2]
        result = await self._verifier.verify(
            spec, f"ModelRelease {release.namespace}/{release.name}"
        )
        result = replace(result, generation=release.generation)
        state.verified = (release.generation, spec.digest, result)
        return result

    async def _write(
        self,
        obj: Mapping[str, Any],
        state: _ReleaseState,
        release: Release,
        decision: Decision,
    ) -> Mapping[str, Any]:
        meta = obj.get("metadata") or {}
        full = status_to_dict(decision.status)
        changed = {key: full.get(key) for key in decision.patch}
        patch = status_merge_patch(obj.get("status"), changed)
        if not patch:
            return obj
        written = await self._client.patch_status(
            MODELRELEASE_PLURAL,
            str(meta.get("namespace")),
            str(meta.get("name")),
            conditional(meta.get("resourceVersion"), patch),
        )
        state.latest = written
        old, new = release.status.phase, decision.status.phase
        if old != new:
            PHASE_CHANGES.labels(phase=new.value).inc()
            log.info(
                "%s: %s -> %s (%s): %s",
                _where(obj), old.value, new.value, decision.status.reason,
                decision.status.message,
            )  # fmt: skip
        elif decision.status.rollout.step != release.status.rollout.step:
            log.info(
                "%s: step %s -> %s (%s)",
                _where(obj), release.status.rollout.step_name,
                decision.status.rollout.step_name, decision.status.reason,
            )  # fmt: skip
        self._post(written, decision.events)
        return written

    def _post(self, body: Mapping[str, Any], events: tuple[Event, ...]) -> None:
        for event in events:
            self._events(body, event.type, event.reason, event.message)
