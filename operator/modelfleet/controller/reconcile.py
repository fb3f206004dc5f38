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
  is one write whatever the fleet size. A change of measured values only (cohort counts, gate
  figures) is written at most every ``refresh`` seconds, so gateways reporting one by one do not
  cost a write per timer tick;
* **verify before telling anyone**: when the spec needs verification, the artifact is verified
  and ``decide`` called with the result, for the generation verified only; a verification that
  takes a while is shown as phase Verifying meanwhile (and the object read again after it);
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

from modelfleet.api import (
    MODELRELEASE_PLURAL,
    SOURCE_REVISION_ANNOTATION,
    parse_action,
    parse_release,
    status_changes,
    status_merge_patch,
)
from modelfleet.controller import metrics
from modelfleet.controller.metrics import RECONCILE_SECONDS, RECONCILES
from modelfleet.controller.patching import conditional, newer, observation_only
from modelfleet.controller.promql import PrometheusQueries
from modelfleet.controller.source import SourceLookup
from modelfleet.controller.verifier import ArtifactVerifier
from modelfleet.core import Release, Verification
from modelfleet.core.decide import Decision, Event, FleetView, decide
from modelfleet.core.gates import DEFAULT_TUNING, Tuning
from modelfleet.core.phases import Phase
from modelfleet.core.types import GENERATED_ACTION_ID
from modelfleet.kube import ApiError, KubeClient, custom_path
from modelfleet.logs import log_fields

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
SHOW_VERIFYING_AFTER = 0.5
"""Seconds a verification may take before phase Verifying is written while it goes on."""
MIN_WAKEUP = 0.1
"""Seconds at least between a decision and the wake-up it asks for (no busy loop on a rule due
within a clock tick)."""


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
    written_at: float = float("-inf")
    """When (monotonic) this process last wrote the release's status."""
    verified: tuple[int, str, Verification] | None = None
    """(generation, digest, result) of the last verification, reused if a write must be retried."""
    key: tuple[str, str] | None = None
    """(namespace, name), to drop the release's metrics once it is deleted."""
    wakeup: asyncio.TimerHandle | None = None
    """When the last decision asked to be looked at again (``Decision.requeue_after``)."""


def needs_attention(body: Mapping[str, Any]) -> bool:
    """Whether a watch event shows something to act on at once (else the timer is enough):
    no status yet, a spec generation not observed yet, a manual action not yet run (or ignored),
    or the removal of an action annotated without an id (so that annotating it again runs it)."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    if not status.get("phase"):
        return True
    if meta.get("generation") != status.get("observedGeneration"):
        return True
    annotations = meta.get("annotations") or {}
    action = parse_action({str(k): str(v) for k, v in annotations.items()})
    last = (status.get("rollout") or {}).get("lastActionId")
    if action is None:
        return isinstance(last, str) and last.startswith(GENERATED_ACTION_ID)
    return action.id != last


def _where(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata") or {}
    return f"ModelRelease {meta.get('namespace')}/{meta.get('name')}"


def _where_release(release: Release) -> str:
    return f"ModelRelease {release.namespace}/{release.name}"


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
        refresh: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        queries: PrometheusQueries | None = None,
    ) -> None:
        """``refresh``: seconds between writes that would only update measured values;
        ``queries``: where query gates are evaluated (None: they have no data)."""
        self._queries = queries
        self._client = client
        self._verifier = verifier
        self._sources = sources
        self._events = events
        self._tuning = tuning
        self._clock = clock
        self._refresh = refresh
        self._states: dict[str, _ReleaseState] = {}

    def forget(self, uid: str) -> None:
        """Drop what is remembered about a deleted release."""
        state = self._states.pop(uid, None)
        if state is not None and state.wakeup is not None:
            state.wakeup.cancel()
        if state is not None and state.key is not None:
            metrics.forget_release(*state.key)
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
        with log_fields(**_correlation(body)):
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

    async def refresh(
        self, namespace: str, name: str, fleet: FleetFn, *, trigger: str = "policy"
    ) -> None:
        """Read the release and reconcile it (after a change of its TrustPolicy, or when a
        time-based rule is due)."""
        try:
            body = await self._client.get(custom_path(MODELRELEASE_PLURAL, namespace, name))
        except ApiError as exc:
            if exc.not_found:
                return  # deleted meanwhile
            raise
        await self.reconcile(body, fleet, trigger=trigger)

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
        state.key = (release.namespace, release.name)
        # Whether the spec must be verified depends on spec and status only, never on the
        # fleet: a probe without gateways tells, without paying for a walk over the fleet.
        if decide(release, FleetView(), self._clock(), tuning=self._tuning).needs_verification:
            return await self._verify_then_decide(obj, release, state, fleet)
        view = await self._view(release, fleet)
        now = self._clock()
        decision = decide(release, view, now, tuning=self._tuning)
        metrics.observe_release(release, decision.status, view, now)
        self._wake_after(state, release, decision, fleet)
        changes = status_changes(decision)
        if not changes:
            return "unchanged"
        measured_only = not decision.events and observation_only(obj.get("status"), changes)
        if measured_only and time.monotonic() - state.written_at < self._refresh:
            return "deferred"  # only counts and gate figures moved: refreshed later
        await self._write(
            obj, state, release, decision, kind="refresh" if measured_only else "status"
        )
        return "refreshed" if measured_only else "written"

    async def _view(
        self, release: Release, fleet: FleetFn, *, verifying: bool = False
    ) -> FleetView:
        """The namespace's fleet, with the query gates' figures while a rollout may be judged."""
        view = fleet(release.namespace)
        gates = release.spec.gates.prometheus
        judged = (Phase.VERIFYING, Phase.BLOCKED, Phase.PROGRESSING, Phase.PAUSED)
        if not gates or not (verifying or release.status.phase in judged):
            return view
        if self._queries is None:
            return view  # no --prometheus-url: no data, Inconclusive
        samples = await self._queries.evaluate(gates, _where_release(release))
        metrics.observe_queries(release, samples)
        return replace(view, queries=samples)

    def _wake_after(
        self, state: _ReleaseState, release: Release, decision: Decision, fleet: FleetFn
    ) -> None:
        """Decide again when ``decision.requeue_after`` says a time-based rule may fire (a bake
        ending, a progress deadline, a first-report grace), rather than on the next timer tick.
        One wake-up per release: a newer decision replaces it; deleting the release cancels it."""
        if state.wakeup is not None:
            state.wakeup.cancel()
            state.wakeup = None
        delay = decision.requeue_after
        if delay is None:
            return
        loop = asyncio.get_running_loop()
        key = (release.namespace, release.name)

        def wake() -> None:
            state.wakeup = None
            task = loop.create_task(self.refresh(*key, fleet, trigger="requeue"))
            task.add_done_callback(_log_failure(key))

        state.wakeup = loop.call_later(max(delay.total_seconds(), MIN_WAKEUP), wake)

    async def _verify_then_decide(
        self, obj: Mapping[str, Any], release: Release, state: _ReleaseState, fleet: FleetFn
    ) -> str:
        """Verify, then decide once with the result. A verification that takes longer than
        :data:`SHOW_VERIFYING_AFTER` is shown as phase Verifying (one write) meanwhile."""
        task = asyncio.ensure_future(self._verification(release, state))
        done, _ = await asyncio.wait({task}, timeout=SHOW_VERIFYING_AFTER)
        if not done or task.exception() is not None:
            shown = decide(release, fleet(release.namespace), self._clock(), tuning=self._tuning)
            if status_changes(shown):
                obj = await self._write(obj, state, release, shown)
            verification = await task
            obj = await self._read(obj)
            release = await self._release(obj)
        else:
            verification = task.result()
        if release.generation != verification.generation:
            log.info("%s: spec changed during verification; deciding again", _where(obj))
            return await self._once(obj, state, fleet)
        view = await self._view(release, fleet, verifying=True)
        now = self._clock()
        decision = decide(release, view, now, verification=verification, tuning=self._tuning)
        metrics.observe_release(release, decision.status, view, now)
        self._wake_after(state, release, decision, fleet)
        if not status_changes(decision):
            return "unchanged"
        await self._write(obj, state, release, decision)
        return "written"

    async def _verification(self, release: Release, state: _ReleaseState) -> Verification:
        spec = release.spec
        cached = state.verified
        if cached is not None and cached[:2] == (release.generation, spec.digest):
            return cached[2]
        result = await self._verifier.verify(
            spec,
            f"ModelRelease {release.namespace}/{release.name}",
            namespace=release.namespace,
            revoked_models=release.status.model_digests(),
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
        *,
        kind: str = "status",
    ) -> Mapping[str, Any]:
        meta = obj.get("metadata") or {}
        patch = status_merge_patch(obj.get("status"), status_changes(decision))
        if not patch:
            return obj
        written = await self._client.merge_patch_status(
            MODELRELEASE_PLURAL,
            str(meta.get("namespace")),
            str(meta.get("name")),
            conditional(meta.get("resourceVersion"), patch),
            kind=kind,
        )
        state.latest = written
        state.written_at = time.monotonic()
        old, new = release.status.phase, decision.status.phase
        if old != new:
            metrics.phase_changed(release, decision.status, self._clock())
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


def _log_failure(key: tuple[str, str]) -> Callable[[asyncio.Task[None]], None]:
    """A done-callback logging why a wake-up's reconciliation failed (the timer retries)."""

    def done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "ModelRelease %s/%s: deciding at the due time failed; the timer retries",
                *key, exc_info=task.exception(),
            )  # fmt: skip

    return done


def _correlation(body: Mapping[str, Any]) -> dict[str, Any]:
    """The log fields of a release (:mod:`modelfleet.logs`): which object, version and commit."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    source = (body.get("status") or {}).get("source") or {}
    annotations = meta.get("annotations") or {}
    return {
        "namespace": meta.get("namespace"),
        "release": meta.get("name"),
        "model": spec.get("model"),
        "version": spec.get("version"),
        "commit": source.get("revision") or annotations.get(SOURCE_REVISION_ANNOTATION),
    }
