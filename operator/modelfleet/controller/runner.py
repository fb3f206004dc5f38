"""Running the operator: kopf settings, login, startup/cleanup, metrics, logging; ``run()``.

kopf runs programmatically (``kopf.run`` with our own registry), standalone (no peering: one
replica; a second one would only race on resourceVersion preconditions and lose), watching the
given namespaces or the whole cluster. Progress kopf might store goes to annotations under
``operator.modelfleet.dev`` (the handlers used here store none), never to status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf

from modelfleet.controller.gateways import GatewayCache
from modelfleet.controller.handlers import Runtime, build_registry
from modelfleet.controller.kube import KubeClient, load_access
from modelfleet.controller.metrics import API_WRITES, write_counts
from modelfleet.controller.promql import PrometheusQueries
from modelfleet.controller.reconcile import Reconciler
from modelfleet.controller.source import SourceLookup
from modelfleet.controller.verifier import ArtifactVerifier, VerifierSettings, warm_up
from modelfleet.core.gates import DEFAULT_TUNING, Tuning

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
    prometheus_url: str | None = None


def _configure_logging(options: OperatorOptions) -> None:
    logging.getLogger().handlers.clear()  # kopf's own handler replaces the CLI's
    fmt = kopf.LogFormat.JSON if options.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(verbose=options.verbose >= 1, debug=options.verbose >= 2, log_format=fmt)
    if options.verbose < 2:
        # kopf reports every timer run at INFO; keep its warnings and errors only.
        logging.getLogger("kopf").setLevel(logging.WARNING)
        logging.getLogger("aiohttp").setLevel(logging.WARNING)


def _post_event(body: Any, type_: str, reason: str, message: str) -> None:
    kopf.event(body, type=type_, reason=reason, message=message[:1024])
    API_WRITES.labels(kind="event").inc()


def _install(registry: kopf.OperatorRegistry, runtime: Runtime, options: OperatorOptions) -> None:
    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if options.kubeconfig is not None:
            os.environ["KUBECONFIG"] = str(options.kubeconfig)  # read at call time by kopf
        elif not os.environ.get("KUBECONFIG") and os.environ.get("KUBERNETES_SERVICE_HOST"):
            return kopf.login_with_service_account(**kwargs)
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
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

        access = load_access(options.kubeconfig)
        client = KubeClient(access)
        await client.__aenter__()
        executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify")
        verifier = ArtifactVerifier(client, options.verifier, executor)
        gateways = GatewayCache(client, None if options.all_namespaces else options.namespaces)
        memo["gateway_task"] = asyncio.create_task(gateways.run(), name="edgegateway watch")
        runtime.gateways = gateways
        runtime.reconciler = Reconciler(
            client,
            verifier,
            SourceLookup(client, options.argocd_namespace),
            _post_event,
            tuning=options.tuning,
            refresh=options.status_refresh,
            queries=PrometheusQueries(options.prometheus_url) if options.prometheus_url else None,
        )
        memo["client"] = client
        memo["executor"] = executor
        await asyncio.get_running_loop().run_in_executor(executor, warm_up)
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
        log.info("modelfleet operator stopped; API writes issued: %s", write_counts())


def run(options: OperatorOptions) -> int:
    """Run the operator until SIGINT/SIGTERM; the exit code."""
    _configure_logging(options)
    if options.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(options.metrics_port, addr=options.metrics_host)
    runtime = Runtime()
    registry = build_registry(runtime, options.interval)
    _install(registry, runtime, options)
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=options.all_namespaces,
        namespaces=() if options.all_namespaces else tuple(options.namespaces),
        liveness_endpoint=options.liveness,
        memo=kopf.Memo(),
    )
    return 0
