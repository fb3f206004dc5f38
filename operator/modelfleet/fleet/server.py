"""The fleet API's HTTP handlers: identity by client certificate, desired state, reports.

Every request on the mTLS port goes through :meth:`FleetAPI.identify`: the TLS layer has already
checked that the client certificate chains to the fleet CA; here its SHA-256 fingerprint must be
the ``spec.certificateFingerprint`` of a known EdgeGateway *now* (the index follows the watch),
and it must not have expired. Then the per-gateway token bucket. Handlers answer from the index;
only ``POST /v1/report`` writes, and only when :func:`~modelfleet.fleet.coalesce.plan_status_patch`
says a write is due. Errors are :class:`~modelfleet.protocol.ProtocolError` turned into
``{"error": {...}}`` by one middleware; anything unexpected is logged with the gateway and
answered 500 (a bug: the fuzz test looks for it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web
from cryptography import x509

from modelfleet.fleet.coalesce import CoalescePolicy, parse_time
from modelfleet.fleet.guard import FleetRequestHandler
from modelfleet.fleet.index import Desired, FleetIndex, GatewayEntry
from modelfleet.fleet.metrics import FleetMetrics
from modelfleet.fleet.ratelimit import RateLimit, RateLimiter
from modelfleet.fleet.reportqueue import QueueSettings, ReportQueue
from modelfleet.fleet.statuswriter import StatusWriter
from modelfleet.kube import KubeClient
from modelfleet.protocol import (
    DesiredQuery,
    ProtocolError,
    Report,
    decode_json,
    parse_desired_query,
    parse_report,
)
from modelfleet.protocol.openapi import document_bytes
from modelfleet.protocol.rules import MAX_BODY_BYTES, POLL_AFTER_HEADER

log = logging.getLogger(__name__)
#: One line per request (DEBUG; INFO for 4xx/5xx): method, route, status, gateway, duration.
#: Never the body, the query, headers or certificate material.
access_log = logging.getLogger("modelfleet.fleet.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSON = "application/json"
_STATUSES = {s.value for s in HTTPStatus}
_NO_QUERY = DesiredQuery()


@dataclass(frozen=True)
class ProtocolSettings:
    """Tunables of the edge protocol (seconds unless named otherwise)."""

    poll_interval: float = 30.0
    active_poll_interval: float = 5.0
    jitter: float = 0.2
    coalesce: CoalescePolicy = field(default_factory=CoalescePolicy)
    queue: QueueSettings = field(default_factory=QueueSettings)
    rate: RateLimit = field(default_factory=RateLimit)
    max_body_bytes: int = MAX_BODY_BYTES
    upstream_retry_after: int = 5
    body_timeout: float = 10.0


def error_response(err: ProtocolError) -> web.Response:
    return web.Response(
        status=err.status,
        body=json.dumps(err.body()).encode(),
        content_type=JSON,
        headers=err.headers,
    )


def _not_after_of(der: bytes) -> float:
    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()


def etag_matches(header: str | None, etag: str) -> bool:
    """Weak comparison of ``If-None-Match`` (a list, or ``*``) against our ETag (RFC 9110)."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    ours = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == ours for tag in header.split(","))


class FleetAPI:
    """One replica's request handling; ``app()`` builds the aiohttp application."""

    def __init__(
        self,
        index: FleetIndex,
        kube: KubeClient | None,
        settings: ProtocolSettings,
        *,
        ready: Callable[[], tuple[bool, str]],
        metrics: FleetMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.index = index
        self.kube = kube
        self.settings = settings
        self.metrics = metrics or FleetMetrics()
        self.limiter = RateLimiter(settings.rate)
        self._ready = ready
        self._clock = clock
        self._not_after: dict[str, float] = {}
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}
        self._openapi = document_bytes()
        self._random = random.Random()
        self._counters: dict[tuple[str, int], Any] = {}  # bound metric children: no label lookup
        self._histograms: dict[tuple[str, int], Any] = {}
        self.writer = StatusWriter(
            index, kube, self.metrics, policy=settings.coalesce,
            retry_after=settings.upstream_retry_after,
        )  # fmt: skip
        self.reports = ReportQueue(
            self.writer, settings.queue, on_written=lambda e, r, p: _log_report(e, r, p.reasons)
        )

    # ------------------------------------------------------------------ plumbing

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._errors], client_max_size=self.settings.max_body_bytes
        )
        app.router.add_get("/v1/desired", self.get_desired, allow_head=False)
        app.router.add_post("/v1/report", self.post_report)
        app.router.add_get("/openapi.json", self.get_openapi, allow_head=False)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        protocol = request.protocol
        if isinstance(protocol, FleetRequestHandler):
            protocol.request_started(request.content)
            try:
                return await self._answer(request, handler)
            finally:
                protocol.request_finished()
        return await self._answer(request, handler)

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.path if request.path in ("/v1/desired", "/v1/report") else "other"
        started = time.perf_counter()
        try:
            response = await handler(request)
        except ProtocolError as err:
            response = error_response(err)
        except web.HTTPException as exc:  # routing: 404, 405 (keeps Allow)
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "bad_request")
            headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
            reason = HTTPStatus(exc.status).phrase if exc.status in _STATUSES else "error"
            response = error_response(ProtocolError(exc.status, code, reason, **headers))
            if "Allow" in headers:
                response.headers["Allow"] = headers["Allow"]
        except Exception:
            log.exception("fleet API: unexpected error on %s %s", request.method, request.path)
            response = error_response(ProtocolError(500, "internal", "internal error"))
        _log_request(request, route, response.status, time.perf_counter() - started)
        counter = self._counters.get((route, response.status))
        if counter is None:
            counter = self.metrics.requests.labels(route, str(response.status))
            self._counters[(route, response.status)] = counter
        counter.inc()
        if not request.query_string or "wait" not in request.query:
            histogram = self._histograms.get((route, response.status))
            if histogram is None:
                histogram = self.metrics.latency.labels(route, str(response.status))
                self._histograms[(route, response.status)] = histogram
            histogram.observe(time.perf_counter() - started)
        return response

    def _fingerprint(self, request: web.Request) -> str:
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            raise ProtocolError(403, "unknown_certificate", "a client certificate is required")
        fp = "sha256:" + hashlib.sha256(der).hexdigest()
        not_after = self._not_after.get(fp)
        if not_after is None:
            if len(self._not_after) > 200_000:
                self._not_after.clear()
            not_after = self._not_after[fp] = _not_after_of(der)
        if self._clock() > not_after:
            raise ProtocolError(403, "certificate_expired", "the client certificate has expired")
        return fp

    def _check_ready(self) -> None:
        ok, reason = self._ready()
        if not ok:
            raise ProtocolError(
                503, "not_ready", reason, Retry_After=str(self.settings.upstream_retry_after)
            )

    def _rate_limit(self, fp: str) -> None:
        wait = self.limiter.acquire(fp)
        if wait > 0:
            raise ProtocolError(
                429,
                "rate_limited",
                f"too many requests; retry in {wait:.1f}s",
                Retry_After=RateLimiter.retry_after_header(wait),
            )

    def identify(self, request: web.Request) -> GatewayEntry:
        """The gateway this request comes from, or a 403/429/503 ProtocolError."""
        fp = self._fingerprint(request)
        self._check_ready()
        self._rate_limit(fp)
        entry = self._lookup(fp)
        protocol = request.protocol  # the access log names the gateway (no request storage)
        if isinstance(protocol, FleetRequestHandler):
            protocol.gateway = entry
        return entry

    def _lookup(self, fp: str) -> GatewayEntry:
        entry = self.index.identify(fp)
        if entry is None and len(self.index.claimants(fp)) > 1:
            raise ProtocolError(
                403,
                "duplicate_fingerprint",
                "more than one EdgeGateway claims this certificate's fingerprint; it is refused "
                "until only one does (Events on those EdgeGateways name them)",
            )
        if entry is None:
            raise ProtocolError(
                403,
                "unknown_certificate",
                "this certificate is not enrolled for any EdgeGateway (revoked or never enrolled)",
            )
        return entry

    def _poll_after(self, desired: Desired) -> int:
        s = self.settings
        base = s.active_poll_interval if desired.rolling else s.poll_interval
        return max(1, round(base * self._random.uniform(1 - s.jitter, 1 + s.jitter)))

    # ------------------------------------------------------------------ GET /v1/desired

    async def get_desired(self, request: web.Request) -> web.Response:
        entry = self.identify(request)
        query = (
            parse_desired_query(request.query, [key for key, _ in request.query.items()])
            if request.query_string
            else _NO_QUERY
        )
        if query.gateway is not None and query.gateway != entry.name:
            raise ProtocolError(
                403, "gateway_mismatch", f"this certificate belongs to {entry.name!r}", "gateway"
            )
        desired = self.index.desired(entry)
        inm = request.headers.get("If-None-Match")
        if query.wait and etag_matches(inm, desired.etag):
            fp = entry.fingerprint or ""
            deadline = time.monotonic() + query.wait
            while (remaining := deadline - time.monotonic()) > 0:
                await asyncio.wait({self.index.change_future(entry.key)}, timeout=remaining)
                self._check_ready()
                entry = self._lookup(fp)
                desired = self.index.desired(entry)
                if self.index.closing or not etag_matches(inm, desired.etag):
                    break
        poll_after = self._poll_after(desired)
        headers = {
            "ETag": desired.etag,
            "Cache-Control": "no-cache",
            POLL_AFTER_HEADER: str(poll_after),
        }
        if etag_matches(inm, desired.etag):
            return web.Response(status=304, headers=headers)
        return web.Response(
            body=desired.body(entry.name, poll_after), content_type=JSON, headers=headers
        )

    # ------------------------------------------------------------------ POST /v1/report

    async def _read_body(self, request: web.Request) -> bytes:
        ctype = request.headers.get("Content-Type", "")
        if ctype.split(";")[0].strip().lower() != JSON:
            raise ProtocolError(
                415, "unsupported_media_type", f"Content-Type must be {JSON}, got {ctype!r}"
            )
        limit = self.settings.max_body_bytes
        too_large = ProtocolError(413, "body_too_large", f"the body exceeds {limit} bytes")
        if request.content_length is not None and request.content_length > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.body_timeout):
                while chunk := await request.content.read(65536):
                    size += len(chunk)
                    if size > limit:
                        raise too_large
                    chunks.append(chunk)
        except TimeoutError:
            raise ProtocolError(
                408, "request_timeout", "the request body did not arrive in time"
            ) from None
        return b"".join(chunks)

    async def post_report(self, request: web.Request) -> web.Response:
        entry = self.identify(request)
        report = parse_report(decode_json(await self._read_body(request)))
        if report.gateway is not None and report.gateway != entry.name:
            raise ProtocolError(
                403, "gateway_mismatch", f"this certificate belongs to {entry.name!r}", "gateway"
            )
        if report.sequence is not None:  # answered once queued; written behind the answer
            decision = self.reports.accept(entry, report, *self._received(entry))
            return _json({"written": decision.written, "reasons": list(decision.reasons)})
        key = entry.key
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                return await self._apply_report(entry.fingerprint or "", report)
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def _received(self, entry: GatewayEntry) -> tuple[dt.datetime, bool]:
        """A report's receipt time, and whether its gateway is in an active cohort."""
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        self.metrics.observe_lag(parse_time((entry.status or {}).get("lastSeen")), now)
        return now, self.index.desired(entry).in_active_cohort

    async def _apply_report(self, fp: str, report: Report) -> web.Response:
        entry = self._lookup(fp)
        patch = await self.writer.apply(entry, report, *self._received(entry))
        if patch is None:
            self.metrics.coalesced.inc()
            return _json({"written": False, "reasons": []})
        self.metrics.status_writes.labels(patch.reasons[0]).inc()
        _log_report(entry, report, patch.reasons)
        return _json({"written": True, "reasons": list(patch.reasons)})

    # ------------------------------------------------------------------ GET /openapi.json

    async def get_openapi(self, request: web.Request) -> web.Response:
        self._rate_limit(self._fingerprint(request))
        return web.Response(body=self._openapi, content_type=JSON)


def _json(doc: dict[str, Any]) -> web.Response:
    return web.Response(body=json.dumps(doc).encode(), content_type=JSON)


def _log_request(request: web.Request, route: str, status: int, seconds: float) -> None:
    level = logging.INFO if status >= 400 else logging.DEBUG
    if not access_log.isEnabledFor(level):
        return
    entry = getattr(request.protocol, "gateway", None)
    gateway = entry.name if isinstance(entry, GatewayEntry) else None
    access_log.log(
        level, "%s %s %d gateway %s (%.1f ms)", request.method, route, status,
        f"{entry.namespace}/{entry.name}" if isinstance(entry, GatewayEntry) else "-",
        seconds * 1000,
        extra={"method": request.method, "route": route, "status": status, "gateway": gateway,
               "namespace": getattr(entry, "namespace", None),
               "durationMs": round(seconds * 1000, 1)},
    )  # fmt: skip


def _log_report(entry: GatewayEntry, report: Report, reasons: tuple[str, ...] | list[str]) -> None:
    """A written report: which gateway, and what it runs (the parsed fields, never the body)."""
    models = ", ".join(f"{m.model} {m.version or '-'} {m.state}" for m in report.models)
    one = report.models[0] if len(report.models) == 1 else None
    log.info(
        "gateway %s/%s: status written (%s): %s", entry.namespace, entry.name,
        ", ".join(reasons), models or "no models",
        extra={"gateway": entry.name, "namespace": entry.namespace,
               "model": one.model if one else None, "version": one.version if one else None,
               "reasons": list(reasons), "route": "/v1/report"},
    )  # fmt: skip
