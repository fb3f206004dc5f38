"""Running the operator: kopf settings, login, startup/cleanup, metrics, logging; ``run()``.

kopf runs programmatically (``kopf.operator`` with our own registry), standalone (no kopf
peering), watching the given namespaces or the whole cluster. With ``--leader-elect`` (the
deployed form: two replicas) kopf starts only once this process holds the Lease
(:mod:`modelfleet.controller.leader`): a standby serves its liveness probe and metrics and
writes nothing else. A leader that loses the Lease exits at once (Kubernetes restarts it as a
standby; all progress lives in status); SIGTERM stops kopf, then releases the Lease so the
standby takes over without waiting for it to expire. Progress kopf might store goes to
annotations under ``operator.modelfleet.dev`` (the handlers used here store none), never to status.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf

from modelfleet.controller.gateways import GatewayCache
from modelfleet.controller.handlers import Runtime, build_registry
from modelfleet.controller.leader import LeaderElector, LeadershipLost, LeaseSettings
from modelfleet.controller.metrics import LEADER, count_write, write_counts
from modelfleet.controller.probes import serve_probes
from modelfleet.controller.promql import PrometheusQueries
from modelfleet.controller.reconcile import Reconciler
from modelfleet.controller.source import SourceLookup
from modelfleet.controller.verifier import ArtifactVerifier, VerifierSettings, warm_up
from modelfleet.core.checklist import ChecklistItem
from modelfleet.core.gates import DEFAULT_TUNING, Tuning
from modelfleet.kube import KubeClient, load_access
from modelfleet.logs import configure as configure_logging

log = logging.getLogger(__name__)

ANNOTATION_PREFIX = "operator.modelfleet.dev"


@dataclass(frozen=True)
class OperatorOptions:
    """Everything ``modelfleet operator`` can be told."""

    namespaces: Sequence[str] = ()
    all_namespaces: bool = False
    interval: float = 5.0
    status_refresh: float = 10.0
    kubeconfig: Path | None = None
    verifier: VerifierSettings = field(default_factory=VerifierSettings)
    tuning: Tuning = DEFAULT_TUNING
    liveness: str | None = None
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 0
    log_format: str = "text"
    verbose: int = 0
    argocd_namespace: str = "argocd"
    lease: LeaseSettings | None = None
    """Leader election on this Lease; None: run at once (one replica)."""
    prometheus_url: str | None = None
    release_checklist: frozenset[ChecklistItem] = frozenset()
    """The cluster-wide release checklist, for TrustPolicies without ``releaseChecklist``."""


def _configure_logging(options: OperatorOptions) -> None:
    """The shared log setup (:mod:`modelfleet.logs`): kopf's per-object records keep their
    namespace and release; asyncio's chatter only with -vv (as kopf's own setup does)."""
    level = logging.DEBUG if options.verbose >= 1 else logging.INFO
    configure_logging(options.log_format, component="operator", level=level)
    logging.getLogger("asyncio").propagate = options.verbose >= 2
    if options.verbose < 2:
        # kopf reports every timer run at INFO; keep its warnings and errors only.
        logging.getLogger("kopf").setLevel(logging.WARNING)
        logging.getLogger("aiohttp").setLevel(logging.WARNING)


def _post_event(body: Any, type_: str, reason: str, message: str) -> None:
    kopf.event(body, type=type_, reason=reason, message=message[:1024])
    count_write("event")


def kopf_login(kubeconfig: Path | None) -> kopf.ConnectionInfo:
    """kopf's connection from the one credential loader (:func:`modelfleet.kube.load_access`),
    so kopf's watches and the operator's own client authenticate alike; kopf calls it again on
    a 401, which picks up a rotated ServiceAccount token."""
    access = load_access(kubeconfig)
    return kopf.ConnectionInfo(
        server=access.server,
        ca_path=access.ca_file,
        insecure=not access.verify,
        certificate_path=access.cert_file,
        private_key_path=access.key_file,
        scheme="Bearer" if access.token is not None and access.bearer() else None,
        token=access.bearer(),
        default_namespace=access.namespace,
    )


def _install(registry: kopf.OperatorRegistry, runtime: Runtime, options: OperatorOptions) -> None:
    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf_login(options.kubeconfig)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        if options.liveness:
            memo["probes"] = await serve_probes(options.liveness, runtime.ready)
        settings.peering.standalone = True
        settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/finalizer"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix=ANNOTATION_PREFIX
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
        )
        settings.posting.level = logging.INFO
        settings.posting.loggers = False
        settings.watching.server_timeout = 120
        settings.watching.client_timeout = 150
        settings.watching.connect_timeout = 5
        settings.networking.request_timeout = 30
        settings.networking.connect_timeout = 5
        settings.queueing.idle_timeout = 30.0

        # Parsing 100,000 EdgeGateways allocates millions of objects: collect the young generation
        # every 50,000 allocations rather than 700 (as the fleet API does).
        gc.set_threshold(50_000, 20, 10)
        client = KubeClient(load_access(options.kubeconfig), on_write=count_write)
        await client.__aenter__()
        executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify")
        verifier = ArtifactVerifier(client, options.verifier, executor)
        gateways = GatewayCache(client, None if options.all_namespaces else options.namespaces)
        memo["gateway_task"] = asyncio.create_task(gateways.run(), name="edgegateway watch")
        memo["client"] = client
        memo["executor"] = executor
        # Warm up before ready: /readyz answers 200 only once releases can be decided at once.
        await asyncio.get_running_loop().run_in_executor(executor, warm_up)
        runtime.gateways = gateways
        runtime.default_checklist = options.release_checklist
        runtime.reconciler = Reconciler(
            client,
            verifier,
            SourceLookup(client, options.argocd_namespace),
            _post_event,
            tuning=options.tuning,
            refresh=options.status_refresh,
            queries=PrometheusQueries(options.prometheus_url) if options.prometheus_url else None,
        )
        log.info(
            "modelfleet operator started: interval %gs, %s", options.interval,
            "all namespaces" if options.all_namespaces else ", ".join(options.namespaces),
        )  # fmt: skip

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        runtime.reconciler = None
        task = memo.get("gateway_task")
        if isinstance(task, asyncio.Task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client = memo.get("client")
        if isinstance(client, KubeClient):
            await client.__aexit__(None, None, None)
        executor = memo.get("executor")
        if isinstance(executor, ThreadPoolExecutor):
            executor.shutdown(wait=False, cancel_futures=True)
        probes = memo.get("probes")
        if probes is not None:
            await probes.cleanup()
        log.info("modelfleet operator stopped; API writes issued: %s", write_counts())


async def _serve_standby_liveness(url: str | None) -> Any:
    """While waiting for the Lease: the probes, live and ready (a standby is ready to take over;
    the leader serves them from kopf's startup once it holds the Lease)."""
    if not url:
        return None
    return await serve_probes(url, lambda: (True, "standby: waiting for the Lease"))


def _lost(reason: str) -> None:
    """The Lease is gone: stop acting as leader at once (no graceful shutdown, which could still
    write); Kubernetes restarts the process, which comes back as a standby."""
    log.error("leadership lost (%s): exiting so that only the new leader writes", reason)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    sys.stderr.flush()
    os._exit(3)


async def _run_elected(options: OperatorOptions, lease: LeaseSettings, **kopf_args: Any) -> None:
    async with KubeClient(load_access(options.kubeconfig), on_write=count_write) as client:
        elector = LeaderElector(client, lease)
        loop = asyncio.get_running_loop()
        waiting = asyncio.ensure_future(elector.acquire())
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, waiting.cancel)
        standby = await _serve_standby_liveness(options.liveness)
        try:
            await waiting
        except asyncio.CancelledError:
            log.info("stopped while standing by; nothing was written")
            return
        finally:
            if standby is not None:
                await standby.cleanup()
        # Until kopf installs its own handlers, a signal stops kopf as soon as it starts.
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        stop_watchdog = elector.watchdog(_lost)
        holding = asyncio.create_task(elector.hold(), name="lease renewal")

        def check(task: asyncio.Task[None]) -> None:
            if not task.cancelled():
                exc = task.exception()
                _lost(str(exc) if isinstance(exc, LeadershipLost) else f"renewal failed: {exc}")

        holding.add_done_callback(check)
        try:
            await kopf.operator(stop_flag=stop, **kopf_args)
        finally:
            holding.remove_done_callback(check)
            holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding
            stop_watchdog.set()
            await elector.release()


def run(options: OperatorOptions) -> int:
    """Run the operator until SIGINT/SIGTERM; the exit code."""
    _configure_logging(options)
    if options.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(options.metrics_port, addr=options.metrics_host)
    runtime = Runtime()
    registry = build_registry(runtime, options.interval)
    _install(registry, runtime, options)
    kopf_args: dict[str, Any] = {
        "registry": registry,
        "standalone": True,
        "clusterwide": options.all_namespaces,
        "namespaces": () if options.all_namespaces else tuple(options.namespaces),
        "liveness_endpoint": None,  # /healthz and /readyz: controller.probes, from startup
        "memo": kopf.Memo(),
    }
    if options.lease is None:
        LEADER.set(1)
        kopf.run(**kopf_args)
    else:
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(_run_elected(options, options.lease, **kopf_args))
    return 0
