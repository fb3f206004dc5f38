"""The gateway agent's main loop, independent of how it talks and measures.

:class:`GatewayAgent` polls the fleet API for the desired state, runs one
:class:`~modelfleet.agent.installer.ModelInstaller` task per model, samples health telemetry once
per window and reports: at once on a state change, and every ``report_interval`` with health.
Everything with side effects outside the data dir is injected (:class:`AgentDeps`): the fleet
transport, the fetcher, the verifier, the health check, the health source and the clock; the real
agent (:mod:`modelfleet.agent.runtime`) and the simulator wire different ones into this same code.

Offline, the agent keeps running its active models and retries with exponential backoff and
jitter; reports are snapshots, so only the newest one and the unsent health windows are kept.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from modelfleet import __version__
from modelfleet.agent.clock import Backoff, Clock
from modelfleet.agent.healthcheck import HealthCheck
from modelfleet.agent.installer import Fetcher, InstallerContext, ModelInstaller
from modelfleet.agent.protocol import (
    DesiredModel,
    DesiredState,
    HealthWindow,
    ModelReport,
    ModelState,
    NotModified,
    Report,
)
from modelfleet.agent.slots import ModelSlots
from modelfleet.agent.state import StateStore
from modelfleet.agent.telemetry import HealthSource, RunningModel
from modelfleet.agent.transport import FleetError, FleetTransport
from modelfleet.agent.verifier import Verifier
from modelfleet.logs import log_fields

log = logging.getLogger(__name__)

MAX_PENDING_WINDOWS = 120


@dataclass(frozen=True)
class AgentSettings:
    """Plain settings of one agent (from ``agent.yaml`` or the simulator)."""

    gateway: str
    data_dir: Path
    poll_interval: float = 30.0
    report_interval: float = 60.0
    window_seconds: float = 60.0
    max_artifact_bytes: int = 16 * 1024**3
    long_poll: float | None = None
    max_backoff: float = 300.0
    agent_version: str = __version__
    durable: bool = True  # fsync state, markers and slots (the simulator turns it off)


@dataclass(frozen=True)
class AgentDeps:
    """The swappable parts: transport, fetcher, verifier, health check and source, clock."""

    transport: FleetTransport
    fetcher: Fetcher
    verifier: Verifier
    health_check: HealthCheck
    clock: Clock
    health_source: HealthSource | None = None
    rng: random.Random = field(default_factory=random.Random)


class GatewayAgent:
    """One gateway: ``await agent.run()`` until cancelled."""

    def __init__(self, settings: AgentSettings, deps: AgentDeps) -> None:
        self.settings = settings
        self.deps = deps
        self.state = StateStore(settings.data_dir, settings.gateway, durable=settings.durable)
        self._changed = asyncio.Event()
        self._installers: dict[str, ModelInstaller] = {}
        self._tasks: dict[str, tuple[DesiredModel, asyncio.Task[None]]] = {}
        self._policy_seen = ""  # the trust policy digest the slots were last checked against
        self._pending_health: collections.deque[HealthWindow] = collections.deque(
            maxlen=MAX_PENDING_WINDOWS
        )
        self.desired: DesiredState | None = None
        self.online = False
        self.reports_sent = 0
        # Report order (protocol ReportSequence): a session per process, and the number of the
        # next report, raised only once the fleet API promised to write a report.
        self._session = secrets.token_urlsafe(12)
        self._report_number = 1
        self._lost_fleet = False  # a poll failed after being online: resend the report at once
        self._ctx = InstallerContext(
            gateway=settings.gateway,
            data_dir=settings.data_dir,
            fetcher=deps.fetcher,
            verifier=deps.verifier,
            health_check=deps.health_check,
            clock=deps.clock,
            state=self.state,
            notify=self._changed.set,
            max_artifact_bytes=settings.max_artifact_bytes,
            retry_cap=settings.max_backoff,
            durable=settings.durable,
        )

    @property
    def gateway(self) -> str:
        return self.settings.gateway

    # -- start-up ---------------------------------------------------------------------------

    def recover(self) -> None:
        """Restore the slot invariant of every model found on disk and load ``state.json``."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.state.load()
        for child in sorted(self.settings.data_dir.iterdir()):
            if not (child / "slots").is_dir():
                continue
            slots = ModelSlots(
                child, child.name, durable=self.settings.durable, gateway=self.gateway
            )
            for action in slots.recover():
                log.warning("gateway %s model %s: recovery: %s", self.gateway, child.name, action)
            rec = self.state.get(child.name)
            active = slots.active_slot()
            marker = slots.marker(active) if active else None
            healthy = {
                s: d for s, d in rec.healthy.items() if (m := slots.marker(s)) and m.digest == d
            }
            if healthy != rec.healthy:
                self.state.update(child.name, healthy=healthy)
            if marker is not None:
                log.info(
                    "gateway %s model %s: running %s (%s) from slot %s",
                    self.gateway, child.name, marker.version, marker.digest, active,
                )  # fmt: skip

    def _models_on_disk(self) -> set[str]:
        root = self.settings.data_dir
        return (
            {c.name for c in root.iterdir() if (c / "slots").is_dir()} if root.is_dir() else set()
        )

    def installer(self, model: str) -> ModelInstaller:
        if model not in self._installers:
            self._installers[model] = ModelInstaller(self._ctx, model)
        return self._installers[model]

    # -- desired state ----------------------------------------------------------------------

    def apply(self, desired: DesiredState) -> None:
        """Start, restart or keep one installer task per desired model."""
        if desired.gateway != self.gateway and (
            self.desired is None or self.desired.gateway != desired.gateway
        ):
            log.warning(
                "gateway %s: the fleet API knows this gateway as %r", self.gateway, desired.gateway
            )
        self.desired = desired
        for d in desired.models:
            current = self._tasks.get(d.model)
            if current is not None and current[0] == d:
                continue  # running or done for this very desired model
            if current is not None and not current[1].done():
                log.info(
                    "gateway %s model %s: desired changed to %s; abandoning %s",
                    self.gateway, d.model, d.version, current[0].version,
                )  # fmt: skip
                current[1].cancel()
            task = asyncio.create_task(self._run_installer(d), name=f"{self.gateway}/{d.model}")
            self._tasks[d.model] = (d, task)
        for model in set(self._tasks) - {d.model for d in desired.models}:
            d_old, task = self._tasks.pop(model)
            if not task.done():
                log.info(
                    "gateway %s model %s: no longer desired; stopping install of %s, keeping the "
                    "active model",
                    self.gateway, model, d_old.version,
                )  # fmt: skip
                task.cancel()

    async def _run_installer(self, d: DesiredModel) -> None:
        with log_fields(model=d.model, version=d.version, release=d.release or None):
            await self._install(d)

    async def _install(self, d: DesiredModel) -> None:
        backoff = Backoff(base=2.0, cap=self.settings.max_backoff, rng=self.deps.rng)
        while True:
            try:
                await self.installer(d.model).reconcile(d)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # log with context, then retry: the invariant holds
                delay = backoff.next_delay()
                log.exception(
                    "gateway %s model %s: unexpected error installing %s (%s); retrying in %.0fs",
                    self.gateway, d.model, d.version, exc, delay,
                )  # fmt: skip
                await self.deps.clock.sleep(delay)

    async def wait_idle(self) -> None:
        """Wait until every installer task has finished (tests, simulator)."""
        while pending := [t for _, t in self._tasks.values() if not t.done()]:
            await asyncio.wait(pending)

    # -- reporting --------------------------------------------------------------------------

    def running_models(self) -> list[RunningModel]:
        out = []
        for model in sorted(self._known_models()):
            slots = self.installer(model).slots
            active = slots.active_slot()
            marker = slots.marker(active) if active else None
            if marker is not None:
                out.append(RunningModel(model=model, version=marker.version))
        return out

    def _known_models(self) -> set[str]:
        models = set(self.state.models)
        if self.desired is not None:
            models |= {d.model for d in self.desired.models}
        return models

    def build_report(self, health: tuple[HealthWindow, ...] = ()) -> Report:
        models = []
        for name in sorted(self.state.models):
            rec = self.state.get(name)
            if rec.state is ModelState.IDLE and not rec.digest:
                continue
            models.append(
                ModelReport(
                    model=name,
                    version=rec.version,
                    digest=rec.digest,
                    slot=rec.slot,
                    state=rec.state,
                    message=rec.message,
                )
            )
        return Report(
            agent_version=self.settings.agent_version,
            models=tuple(models),
            health=health,
            sequence=(self._session, self._report_number),
        )

    async def report_once(self) -> None:
        """Send the current snapshot and every unsent health window; raises FleetError.

        The fleet API answers once it accepted the report; ``written: true`` promises the write
        (done behind the answer), and the next report is numbered one higher. A report that was
        not answered is sent again, as a fresh snapshot, with the same number."""
        self._changed.clear()
        health = tuple(self._pending_health)
        written = await self.deps.transport.post_report(self.build_report(health))
        if written:
            self._report_number += 1
        for _ in health:
            self._pending_health.popleft()
        self.reports_sent += 1

    # -- loops ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Recover, re-verify slots made under another policy, then poll, report and sample
        until cancelled."""
        self.recover()
        self._policy_seen = self.deps.verifier.policy_digest
        for model in sorted(self.state.models.keys() | self._models_on_disk()):
            await self.installer(model).revalidate()
        loops = [self._poll_loop(), self._report_loop()]
        if self.deps.health_source is not None:
            loops.append(self._telemetry_loop())
        try:
            async with asyncio.TaskGroup() as tg:
                for coro in loops:
                    tg.create_task(coro)
        finally:
            for _, task in self._tasks.values():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*(t for _, t in self._tasks.values()), return_exceptions=True)

    async def poll_once(self, etag: str | None) -> DesiredState | NotModified:
        answer = await self.deps.transport.get_desired(etag=etag, wait=self.settings.long_poll)
        if isinstance(answer, DesiredState):
            self.apply(answer)
        return answer

    async def follow_policy(self) -> None:
        """When the trust policy file changed, re-verify the slots of every model no install
        task is working on (one that is does so itself), so a revocation on the device applies
        without waiting for a new desired version: a revoked active model is dropped."""
        digest = self.deps.verifier.policy_digest
        if digest == self._policy_seen:
            return
        self._policy_seen = digest
        for model in sorted(self.state.models.keys() | self._models_on_disk()):
            current = self._tasks.get(model)
            if current is None or current[1].done():
                await self.installer(model).revalidate()

    async def _poll_loop(self) -> None:
        etag: str | None = None
        backoff = Backoff(base=1.0, cap=self.settings.max_backoff, rng=self.deps.rng)
        poll_after = self.settings.poll_interval
        while True:
            await self.follow_policy()
            started = self.deps.clock.monotonic()
            try:
                desired = await self.poll_once(etag)
            except FleetError as exc:
                delay = backoff.next_delay()
                level = logging.WARNING if self.online or backoff.attempts == 1 else logging.INFO
                log.log(
                    level,
                    "gateway %s: cannot get desired state (%s); keeping active models, retry in "
                    "%.1fs",
                    self.gateway, exc.diagnostics(), delay,
                )  # fmt: skip
                self._lost_fleet = self._lost_fleet or self.online
                self.online = False
                await self.deps.clock.sleep(delay)
                continue
            if not self.online:
                log.info("gateway %s: connected to the fleet API", self.gateway)
            if self._lost_fleet:  # the replica that took the last report may have died with
                self._lost_fleet = False  # its write queued: send the snapshot again now
                self._changed.set()
            self.online = True
            backoff.reset()
            if isinstance(desired, DesiredState):
                etag = desired.etag
            if desired.poll_after_seconds is not None:
                poll_after = desired.poll_after_seconds
            wait = self.settings.long_poll
            held = self.deps.clock.monotonic() - started
            if isinstance(desired, NotModified) and wait and held >= min(wait, 60) / 2:
                await asyncio.sleep(0)  # let other tasks run between polls
                continue  # the server held the poll open: ask again at once
            await self.deps.clock.sleep(poll_after)

    async def _report_loop(self) -> None:
        backoff = Backoff(base=1.0, cap=self.settings.max_backoff, rng=self.deps.rng)
        while True:
            try:
                await self.report_once()
            except FleetError as exc:
                delay = backoff.next_delay()
                log.log(
                    logging.INFO if exc.transient else logging.WARNING,
                    "gateway %s: report not delivered (%s); retry in %.1fs",
                    self.gateway, exc.diagnostics(), delay,
                )  # fmt: skip
                await self.deps.clock.sleep(delay)
                continue
            backoff.reset()
            await self._wait_changed(self.settings.report_interval)

    async def _wait_changed(self, delay: float) -> None:
        """Sleep ``delay`` on the clock, or less when a state changed."""
        waiter = asyncio.create_task(self._changed.wait())
        sleeper = asyncio.create_task(self.deps.clock.sleep(delay))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()

    async def _telemetry_loop(self) -> None:
        source = self.deps.health_source
        assert source is not None
        while True:
            await self.deps.clock.sleep(self.settings.window_seconds)
            windows = await source.sample(self.running_models())
            self._pending_health.extend(windows)
