"""N gateway agents in one asyncio process, through the real agent code.

Each simulated gateway is a :class:`~modelfleet.agent.core.GatewayAgent` with its own data dir,
its own client certificate (enrolled for real, or from a pre-made bundle) and the real HTTP
transport, downloader and trust verifier; only the health check, the health source and the
reachability of the fleet API are synthetic (:mod:`modelfleet.agent.behaviour`). For large N,
agents with the same TLS identity share one connector, artifact downloads share one session,
and verification results are shared through a :class:`VerifiedCache` keyed by (digest,
signature, attestations, policy): each agent still hashes its own bytes and activates through
the same code path.

Programmatic use (the demo does this)::

    configs = load_bundles(Path("bundles"))      # or enrolled by `modelfleet simulate`
    async with Simulation(configs, SimulationOptions(behaviour=table)) as sim:
        await sim.run(duration=120, progress=print)
        print(sim.snapshot().counts)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import logging
import resource
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from modelfleet.agent.behaviour import (
    BehaviourTable,
    FlakyTransport,
    SyntheticHealthCheck,
    SyntheticHealthSource,
    draw,
)
from modelfleet.agent.bundles import load_bundles
from modelfleet.agent.clock import Clock, SystemClock
from modelfleet.agent.config import AgentConfig
from modelfleet.agent.core import AgentDeps, GatewayAgent
from modelfleet.agent.download import Downloader
from modelfleet.agent.runtime import artifact_ssl_context, origin, settings_from_config
from modelfleet.agent.transport import USER_AGENT, HttpFleetTransport, client_ssl_context
from modelfleet.agent.trustverifier import TrustVerifier, VerifiedCache
from modelfleet.errors import ConfigError

log = logging.getLogger(__name__)
__all__ = [
    "BackgroundSimulation",
    "FleetSnapshot",
    "Simulation",
    "SimulationOptions",
    "load_bundles",
]
T = TypeVar("T")


@dataclass(frozen=True)
class SimulationOptions:
    """Knobs of a simulation; ``None`` intervals keep what each ``agent.yaml`` says."""

    behaviour: BehaviourTable = field(default_factory=BehaviourTable)
    seed: int = 0
    offline_fraction: float = 0.0
    poll_interval: float | None = None
    report_interval: float | None = None
    window_seconds: float = 15.0
    long_poll: float | None = None
    ramp_seconds: float = 0.0
    share_verification: bool = True
    durable: bool = False  # fsync like a real gateway (thousands of fsyncs on one disk)


@dataclass(frozen=True)
class FleetSnapshot:
    """How many gateways are in which (model, version, state), and how many are online."""

    gateways: int
    online: int
    counts: Mapping[tuple[str, str, str], int]

    def line(self) -> str:
        by_model: dict[str, list[str]] = collections.defaultdict(list)
        for (model, version, state), n in sorted(self.counts.items()):
            by_model[model].append(f"{version or '-'} {state} {n}")
        models = " | ".join(f"{m}: {', '.join(parts)}" for m, parts in sorted(by_model.items()))
        return f"{self.gateways} gateways, {self.online} online | {models or 'no models yet'}"


def _digest_files(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def raise_fd_limit(wanted: int) -> None:
    """Lift the soft open-files limit toward ``wanted`` (many agents hold many sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class Simulation:
    """Runs one :class:`GatewayAgent` per config in this event loop."""

    def __init__(
        self,
        configs: Sequence[AgentConfig],
        options: SimulationOptions | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        if not configs:
            raise ConfigError("a simulation needs at least one gateway")
        self.configs = list(configs)
        self.options = options or SimulationOptions()
        self.clock = clock or SystemClock()
        self.cache = VerifiedCache() if self.options.share_verification else None
        self.agents: list[GatewayAgent] = []
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._verifiers: dict[str, TrustVerifier] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Simulation:
        raise_fd_limit(len(self.configs) * 4 + 256)
        try:
            self.agents = [self._agent(c) for c in self.configs]
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _session(
        self, key: str, make: Callable[[], aiohttp.ClientSession]
    ) -> aiohttp.ClientSession:
        if key not in self._sessions:
            self._sessions[key] = make()
        return self._sessions[key]

    def _verifier(self, config: AgentConfig) -> TrustVerifier:
        raw = config.trust_policy.read_bytes()
        key = hashlib.sha256(raw).hexdigest()
        if b"file:" in raw:  # relative key files: one policy per folder
            key += str(config.trust_policy.resolve().parent)
        if key not in self._verifiers:
            self._verifiers[key] = TrustVerifier(config.trust_policy, cache=self.cache)
        return self._verifiers[key]

    def _agent(self, config: AgentConfig) -> GatewayAgent:
        opts = self.options
        identity = _digest_files(config.tls.cert, config.tls.key, config.tls.ca)
        fleet = self._session(
            f"fleet/{identity}",
            lambda: aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    ssl=client_ssl_context(config.tls), limit=2, keepalive_timeout=120
                ),
                headers={"User-Agent": USER_AGENT},
            ),
        )
        public = self._session(
            f"public/{_digest_files(config.tls.ca)}",
            lambda: aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=artifact_ssl_context(config), limit=32),
                headers={"User-Agent": USER_AGENT},
            ),
        )
        fleet_origin = origin(config.fleet_url)

        def session_for(uri: str) -> aiohttp.ClientSession:
            return fleet if origin(uri) == fleet_origin else public

        settings = settings_from_config(config, long_poll=opts.long_poll)
        settings = dataclasses.replace(
            settings,
            poll_interval=opts.poll_interval or settings.poll_interval,
            report_interval=opts.report_interval or settings.report_interval,
            window_seconds=opts.window_seconds,
            durable=opts.durable,
        )
        gw = config.gateway
        agent_ref: list[GatewayAgent] = []

        def offline() -> bool:
            if draw(opts.seed, "offline", gw) < opts.offline_fraction:
                return True
            for running in agent_ref[0].running_models() if agent_ref else ():
                b = opts.behaviour.for_version(running.version)
                if draw(opts.seed, "offline", gw, running.version) < b.offline_fraction:
                    return True
            return False

        agent = GatewayAgent(
            settings,
            AgentDeps(
                transport=FlakyTransport(HttpFleetTransport(config.fleet_url, fleet), offline),
                fetcher=Downloader(session_for, gateway=gw),
                verifier=self._verifier(config),
                health_check=SyntheticHealthCheck(gw, opts.behaviour, self.clock, opts.seed),
                clock=self.clock,
                health_source=SyntheticHealthSource(gw, opts.behaviour, self.clock, opts.seed),
            ),
        )
        agent_ref.append(agent)
        return agent

    def start(self) -> None:
        """Start every agent (spread over ``ramp_seconds``)."""
        n = len(self.agents)
        for i, agent in enumerate(self.agents):
            delay = self.options.ramp_seconds * i / n if n else 0.0
            self._tasks.append(asyncio.create_task(self._run_one(agent, delay), name=agent.gateway))

    async def _run_one(self, agent: GatewayAgent, delay: float) -> None:
        if delay:
            await self.clock.sleep(delay)
        try:
            await agent.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("gateway %s: simulated agent crashed", agent.gateway)
            raise

    async def run(
        self,
        duration: float | None = None,
        *,
        progress: Callable[[str], None] | None = None,
        progress_interval: float = 5.0,
        until: Callable[[FleetSnapshot], bool] | None = None,
    ) -> FleetSnapshot:
        """Run until ``duration`` passes or ``until(snapshot)`` holds (or forever)."""
        if not self._tasks:
            self.start()
        started = self.clock.monotonic()
        while True:
            await self.clock.sleep(progress_interval if progress else min(progress_interval, 1.0))
            snap = self.snapshot()
            if progress is not None:
                progress(f"[{self.clock.monotonic() - started:6.0f}s] {snap.line()}")
            crashed = [t for t in self._tasks if t.done() and not t.cancelled() and t.exception()]
            if crashed:
                raise RuntimeError(f"{len(crashed)} simulated agents crashed (see the log)")
            if until is not None and until(snap):
                return snap
            if duration is not None and self.clock.monotonic() - started >= duration:
                return snap

    def snapshot(self) -> FleetSnapshot:
        counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
        for agent in self.agents:
            for model, rec in agent.state.models.items():
                counts[(model, rec.version, rec.state.value)] += 1
        return FleetSnapshot(
            gateways=len(self.agents),
            online=sum(1 for a in self.agents if a.online),
            counts=dict(counts),
        )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for session in self._sessions.values():
            await session.close()
        self._sessions = {}


class BackgroundSimulation:
    """A :class:`Simulation` on its own event loop in a thread, for synchronous callers (the
    demo, tests)::

        with BackgroundSimulation(configs, options) as sim:
            sim.wait_until(lambda s: s.counts.get(("detector", "2.1.0", "Active"), 0) >= 10, 120)
    """

    def __init__(self, configs: Sequence[AgentConfig], options: SimulationOptions | None = None):
        self._configs = list(configs)
        self._options = options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._sim: Simulation | None = None

    def __enter__(self) -> BackgroundSimulation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> BackgroundSimulation:
        self._thread.start()
        self._sim = self._call(self._open())
        return self

    async def _open(self) -> Simulation:
        sim = Simulation(self._configs, self._options)
        await sim.__aenter__()
        sim.start()
        return sim

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def simulation(self) -> Simulation:
        if self._sim is None:
            raise RuntimeError("the simulation is not running")
        return self._sim

    def snapshot(self) -> FleetSnapshot:
        sim = self.simulation

        async def snap() -> FleetSnapshot:
            return sim.snapshot()

        return self._call(snap())

    def wait_until(
        self, predicate: Callable[[FleetSnapshot], bool], timeout: float, poll: float = 0.5
    ) -> FleetSnapshot:
        """The first snapshot for which ``predicate`` holds; TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            if predicate(snap):
                return snap
            if time.monotonic() >= deadline:
                raise TimeoutError(f"simulation did not reach the condition: {snap.line()}")
            time.sleep(poll)

    def stop(self) -> None:
        if self._sim is not None:
            self._call(self._sim.close())
            self._sim = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()
