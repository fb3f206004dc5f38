"""Prometheus metrics of one fleet API process, and the plain-HTTP ``/metrics`` + ``/healthz`` app.

Each process has its own registry (several servers can live in one test process). With
``--workers N`` every worker serves its own metrics on ``metrics_port + worker_index``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from cryptography import x509
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest


class FleetMetrics:
    """The fleet API's counters and histograms (names prefixed ``modelfleet_fleet_api_``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        p = "modelfleet_fleet_api_"
        self.requests = Counter(
            p + "requests_total", "Requests by route and status", ["route", "code"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            p + "request_seconds", "Request handling time by route and status (no long polls)",
            ["route", "code"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )  # fmt: skip
        self.status_writes = Counter(
            p + "status_writes_total", "EdgeGateway status writes by first reason", ["reason"],
            registry=self.registry,
        )  # fmt: skip
        self.coalesced = Counter(
            p + "reports_coalesced_total", "Reports that needed no status write",
            registry=self.registry,
        )  # fmt: skip
        count = self._counter
        self.status_rereads = count(
            "status_rereads_total", ["reason"],
            "EdgeGateway reads before a status decision: conflict (409 on a write planned on an "
            "older copy), confirm (the copy confirmed before coalescing a report without a "
            "sequence) or order (a report still waiting for the write promised before it)",
        )  # fmt: skip
        self.reports = count(
            "reports_total", ["outcome"],
            "Reports with a sequence, by outcome: queued (answered written: true, written "
            "behind the answer), coalesced (nothing due), applied (status already holds it or a "
            "later one), refused (queue full: 503)",
        )  # fmt: skip
        self.report_write_failures = count(
            "report_write_failures_total", ["code"],
            "Queued reports whose status write was given up (the agent's next report carries "
            "the state again), by error code",
        )  # fmt: skip
        self.reports_folded = count(
            "reports_folded_total", [],
            "Queued reports written as part of a later report of the same gateway (they queued "
            "up while its write waited for a slot; a report naming a failure is never folded)",
        )  # fmt: skip
        self.report_queue = Gauge(
            p + "report_queue", "Reports answered and waiting for their status write",
            registry=self.registry,
        )  # fmt: skip
        self.upstream_errors = Counter(
            p + "upstream_errors_total", "Failed API-server calls", registry=self.registry
        )
        self.watch_events = Counter(
            p + "watch_events_total", "Watch events received", ["type"], registry=self.registry
        )
        self.gateways = Gauge(
            p + "gateways", "EdgeGateways known (enrolled or not)", registry=self.registry
        )
        self.releases = Gauge(p + "releases", "ModelReleases known", registry=self.registry)
        self.handshakes_pending = Gauge(
            p + "handshakes_pending", "Connections in TLS handshake", registry=self.registry
        )
        self.handshakes_dropped = Counter(
            p + "handshakes_dropped_total",
            "Connections closed before their TLS handshake finished, by reason "
            "(evicted: over --max-handshakes or out of descriptors; timeout; failed)",
            ["reason"], registry=self.registry,
        )  # fmt: skip
        self.duplicate_fingerprints = Gauge(
            p + "duplicate_fingerprints",
            "Certificate fingerprints claimed by more than one EdgeGateway (refused)",
            registry=self.registry,
        )

        self.connections = Gauge(
            p + "connections", "Open client connections (TLS established)", registry=self.registry
        )
        self.status_lag = Histogram(
            p + "status_lag_seconds",
            "Age of a gateway's stored EdgeGateway status (lastSeen) when its report arrives: how "
            "far coalescing lets the status lag behind the reports",
            buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800),
            registry=self.registry,
        )
        self.certificate_expiry = Gauge(
            p + "certificate_expiry_timestamp_seconds",
            "notAfter of the serving certificate and of the fleet CA (Unix time)",
            ["certificate"], registry=self.registry,
        )  # fmt: skip

    def _counter(self, name: str, labels: list[str], doc: str) -> Counter:
        return Counter("modelfleet_fleet_api_" + name, doc, labels, registry=self.registry)

    def observe_certificates(self, cert: Path, client_ca: Path) -> None:
        """Set the expiry gauges from the PEM files served (the first certificate of each)."""
        for label, path in (("serving", cert), ("client_ca", client_ca)):
            first = x509.load_pem_x509_certificates(path.read_bytes())[0]
            self.certificate_expiry.labels(label).set(first.not_valid_after_utc.timestamp())

    def observe_lag(self, last_seen: dt.datetime | None, now: dt.datetime) -> None:
        """A report arrived for a status last written at ``last_seen`` (None: never)."""
        if last_seen is not None:
            self.status_lag.observe(max(0.0, (now - last_seen).total_seconds()))

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))


def metrics_app(metrics: FleetMetrics, health: Callable[[], tuple[bool, str]]) -> web.Application:
    """``/metrics`` (Prometheus text), ``/healthz`` and ``/readyz`` (both 200 when serving: both
    watches listed and the HTTPS port open; else 503 with a reason)."""

    async def metrics_handler(_: web.Request) -> web.Response:
        resp = web.Response(body=metrics.exposition())
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return resp

    async def healthz(_: web.Request) -> web.Response:
        ok, reason = health()
        return web.json_response({"ok": ok, "reason": reason}, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    return app
