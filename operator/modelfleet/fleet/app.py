"""Running the fleet API: TLS, watches, the HTTPS site, the metrics site, workers and signals.

:func:`run` is the whole server as a coroutine (tests and embedding); :func:`serve` runs it in
this process or, with ``workers > 1``, in that many forked processes sharing the port through
``SO_REUSEPORT`` (each with its own watches and caches: replicas are stateless). The HTTPS port
opens only once both watches have listed, so a starting replica never refuses an enrolled
gateway for want of data.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import ssl
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiohttp import web

from modelfleet.api import parse_release
from modelfleet.certs import TLSFiles
from modelfleet.errors import ConfigError
from modelfleet.fleet.events import ConflictEvents
from modelfleet.fleet.guard import ConnectionLimits, FleetRequestHandler, GuardedSite
from modelfleet.fleet.index import FleetIndex
from modelfleet.fleet.memory import MemoryReclaimer
from modelfleet.fleet.metrics import FleetMetrics, metrics_app
from modelfleet.fleet.secrets import FleetSecrets
from modelfleet.fleet.server import FleetAPI, ProtocolSettings
from modelfleet.kube import KubeClient, Reflector, Sink, load_access

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerOptions:
    """Everything ``modelfleet fleet-api`` takes."""

    host: str = "0.0.0.0"
    port: int = 8443
    tls: TLSFiles | None = None  # None: read Secret modelfleet-fleet-api-tls
    tls_namespace: str | None = None  # where that Secret is (default: the kubeconfig's)
    namespace: str | None = None  # watch one namespace; None: all namespaces
    kubeconfig: Path | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    settings: ProtocolSettings = field(default_factory=ProtocolSettings)
    max_staleness: float = 60.0
    workers: int = 1
    reuse_port: bool = False
    backlog: int = 2048
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    uvloop: bool = True  # use uvloop when it is installed


def server_ssl_context(tls: TLSFiles) -> ssl.SSLContext:
    """TLS 1.2+, our certificate, client certificates required and checked against the fleet CA
    only (never the system store)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(tls.cert), str(tls.key))
        ctx.load_verify_locations(cafile=str(tls.ca))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS material: {exc}") from exc
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.options |= ssl.OP_NO_RENEGOTIATION  # one identity per connection, no renegotiation DoS
    return ctx


async def tls_from_secret(kube: KubeClient, namespace: str, folder: Path) -> TLSFiles:
    """Write the Secret's PEMs into ``folder`` (0700) and return their paths."""
    material = await FleetSecrets(kube, namespace).server_tls()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = TLSFiles(folder / "tls.crt", folder / "tls.key", folder / "ca.crt")
    for path, data in (
        (paths.cert, material.cert_pem),
        (paths.key, material.key_pem),
        (paths.ca, material.ca_pem),
    ):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    return paths


class Replica:
    """One running fleet API: watches, index, handlers. Built and torn down by :func:`run`."""

    def __init__(self, options: ServerOptions, kube: KubeClient) -> None:
        self.options = options
        self.metrics = FleetMetrics()
        self.conflicts = ConflictEvents(kube)
        self.index = FleetIndex(parse_release, on_claims_changed=self.conflicts.claims_changed)
        self.conflicts.index = self.index
        ns = options.namespace
        stale = options.max_staleness

        def count(kind: str) -> None:
            self.metrics.watch_events.labels(kind).inc()

        idx = self.index
        sinks = (
            Sink("edgegateways", idx.replace_gateways, idx.upsert_gateway, idx.delete_gateway),
            Sink("modelreleases", idx.replace_releases, idx.upsert_release, idx.delete_release),
        )
        self.reflectors = [
            Reflector(kube, sink, ns, max_staleness=stale, on_event=count) for sink in sinks
        ]
        self.listening = False
        self.site: GuardedSite | None = None
        self.reclaimer = MemoryReclaimer()
        self.api = FleetAPI(
            self.index, kube, options.settings, ready=self.ready, metrics=self.metrics
        )

    def count_dropped(self, reason: str) -> None:
        self.metrics.handshakes_dropped.labels(reason).inc()

    def ready(self) -> tuple[bool, str]:
        if not self.listening:
            return False, "starting: the HTTPS port is not open yet"
        for r in self.reflectors:
            if not r.synced.is_set():
                return False, f"{r.sink.plural} not listed yet"
            if not r.healthy:
                return False, f"{r.sink.plural}: API server unreachable for too long"
        return True, "serving"

    async def housekeeping(self) -> None:
        while True:
            self.metrics.gateways.set(len(self.index.gateways))
            self.metrics.releases.set(len(self.index.releases))
            self.metrics.duplicate_fingerprints.set(len(self.index.conflicts()))
            if self.site is not None:
                self.metrics.handshakes_pending.set(self.site.pending_handshakes)
                self.metrics.connections.set(self.site.open_connections)
            self.api.limiter.prune()
            if self.site is not None and self.reclaimer.tick(self.site.closed):
                log.debug("fleet API: returned freed connection memory to the system")
            # Nothing is frozen here: objects frozen while a connection is open are never
            # collected once it closes if they sit in a reference cycle (and any garbage
            # awaiting collection at that moment is frozen with them). Only start-up objects
            # are frozen, once, in run().
            await asyncio.sleep(5.0)


async def run(
    options: ServerOptions,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve until ``stop`` is set; ``on_ready(port)`` once the HTTPS port accepts requests."""
    stop = stop or asyncio.Event()
    access = await asyncio.to_thread(load_access, options.kubeconfig)
    with tempfile.TemporaryDirectory(prefix="modelfleet-fleet-api-") as tmp:
        async with KubeClient(access) as kube:
            tls = options.tls
            if tls is None:
                tls = await tls_from_secret(
                    kube, options.tls_namespace or options.namespace or access.namespace, Path(tmp)
                )
            ctx = server_ssl_context(tls)
            replica = Replica(options, kube)
            replica.metrics.observe_certificates(tls.cert, tls.ca)
            tasks = [asyncio.create_task(r.run()) for r in replica.reflectors]
            tasks.append(asyncio.create_task(replica.housekeeping()))
            tasks.append(asyncio.create_task(replica.conflicts.run()))
            runners: list[web.AppRunner] = []
            api_runner: web.AppRunner | None = None
            try:
                if options.metrics_port is not None:
                    mrunner = web.AppRunner(
                        metrics_app(replica.metrics, replica.ready), access_log=None
                    )
                    await mrunner.setup()
                    runners.append(mrunner)
                    await web.TCPSite(
                        mrunner,
                        options.metrics_host,
                        options.metrics_port,
                        reuse_port=options.reuse_port,
                    ).start()
                await _wait_synced(replica, stop)
                if stop.is_set():
                    return
                runner = web.AppRunner(replica.api.app(), access_log=None, handle_signals=False)
                await runner.setup()
                runners.append(runner)
                api_runner = runner
                site = GuardedSite(
                    runner,
                    options.host,
                    options.port,
                    ssl_context=ctx,
                    limits=options.limits,
                    reuse_port=options.reuse_port,
                    backlog=options.backlog,
                    on_dropped=replica.count_dropped,
                )
                replica.site = site
                await site.start()
                replica.listening = True
                # Start-up objects (modules, the index as listed) out of the cyclic GC's way, after
                # a collection so no garbage is frozen; young-generation collections only see
                # new objects. Connection objects are never frozen (see housekeeping).
                gc.collect()
                gc.freeze()
                gc.set_threshold(50_000, 20, 10)
                port = site.port
                log.info(
                    "fleet API serving https://%s:%d (%s; %d gateways, %d releases)",
                    options.host, port, f"namespace {options.namespace}"
                    if options.namespace else "all namespaces",
                    len(replica.index.gateways), len(replica.index.releases),
                )  # fmt: skip
                if on_ready is not None:
                    on_ready(port)
                await stop.wait()
            finally:
                await _quiesce(replica, api_runner, options.settings.body_timeout + 5)
                for r in reversed(runners):
                    await r.cleanup()
                for t in tasks:
                    t.cancel()
                for t in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await t


async def _quiesce(replica: Replica, runner: web.AppRunner | None, grace: float) -> None:
    """SIGTERM: end long polls, finish the requests in flight, write the accepted reports."""
    replica.index.wake_all(closing=True)
    if runner is not None and replica.site is not None:
        await _drain(runner, replica.site, grace)
    left = await replica.api.reports.flush(grace)
    if left:
        log.warning("fleet API: %d accepted reports not written at shutdown", left)
    await replica.api.reports.close()


async def _drain(runner: web.AppRunner, site: web.BaseSite, grace: float) -> None:
    """On SIGTERM, before the connections are closed: stop accepting, and let the requests in
    flight finish (a report whose body is still arriving is read, written and answered; aiohttp
    itself would stop reading it). Long polls were already woken. At most ``grace`` seconds."""
    await site.stop()
    deadline = time.monotonic() + grace
    server = runner.server
    while server is not None and time.monotonic() < deadline:
        if not any(isinstance(c, FleetRequestHandler) and c.busy for c in server.connections):
            return
        await asyncio.sleep(0.05)


async def _wait_synced(replica: Replica, stop: asyncio.Event) -> None:
    started = time.monotonic()
    while not stop.is_set():
        if all(r.synced.is_set() for r in replica.reflectors):
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)
        if time.monotonic() - started > 30:
            log.warning("fleet API: still waiting for the first list from the API server")
            started = time.monotonic()


def _serve_one(options: ServerOptions) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(options, stop=stop)

    run_loop(main(), use_uvloop=options.uvloop)
    return 0


def run_loop(coro: Coroutine[Any, Any, None], *, use_uvloop: bool = True) -> None:
    """Run ``coro`` on uvloop when installed (TLS and sockets cost much less), else asyncio."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(coro)
            return
    asyncio.run(coro)


def _worker(options: ServerOptions, index: int) -> None:
    metrics = None if options.metrics_port is None else options.metrics_port + index
    sys.exit(_serve_one(replace(options, metrics_port=metrics, workers=1, reuse_port=True)))


def serve(options: ServerOptions) -> int:
    """Run in the foreground until SIGTERM/SIGINT; ``workers > 1`` forks that many processes."""
    if options.workers <= 1:
        return _serve_one(options)
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_worker, args=(options, i), name=f"fleet-api-{i}", daemon=False)
        for i in range(options.workers)
    ]
    for p in procs:
        p.start()

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    while procs:
        for p in list(procs):
            p.join(0.2)
            if p.exitcode is not None:
                procs.remove(p)
                if p.exitcode != 0:
                    code = 1
                    log.error("fleet API worker %s exited with %s; stopping", p.name, p.exitcode)
                    forward(signal.SIGTERM, None)
    return code
