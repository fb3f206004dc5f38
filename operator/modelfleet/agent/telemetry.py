"""Health telemetry: the :class:`HealthSource` protocol and the Prometheus implementation.

The agent asks its health source once per window for the models it runs; the source answers
with :class:`~modelfleet.agent.protocol.HealthWindow` aggregates (request and error counts,
latency p50/p95, drift). The Prometheus source scrapes the local inference server, keeps the
previous cumulative values in memory, and reports deltas; only these aggregates leave the device.

Counters and the histogram are summed over every series whose ``modelLabel`` equals the model
(any other labels, e.g. status codes, are summed over); when no series of a metric carries the
label at all, the unlabelled total is used (a single-model server). A window that spans a
version change or a counter reset is dropped, never misattributed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from modelfleet.agent.clock import Clock, isoformat
from modelfleet.agent.config import MetricsConfig
from modelfleet.agent.protocol import HealthWindow

log = logging.getLogger(__name__)

MAX_SCRAPE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class RunningModel:
    """A model version currently active on the gateway."""

    model: str
    version: str


class HealthSource(Protocol):
    """Where health aggregates come from (Prometheus on a device, synthetic in the simulator)."""

    async def sample(self, running: Sequence[RunningModel]) -> list[HealthWindow]:
        """Aggregates since the previous call for each running model (none on the first call
        for a model version, or when the source cannot be read)."""
        ...


@dataclass(frozen=True)
class Cumulative:
    """Cumulative values of one model at one scrape."""

    requests: float
    errors: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), sorted
    drift: float | None


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """``histogram_quantile`` as Prometheus computes it, from cumulative ``(le, count)`` pairs.

    Linear interpolation inside the bucket holding the rank; the lower bound of the first bucket
    is 0; a rank in the ``+Inf`` bucket yields the largest finite bound. None without samples.
    """
    if not buckets:
        return None
    ordered = sorted(buckets)
    total = ordered[-1][1]
    if total <= 0 or not math.isinf(ordered[-1][0]):
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            in_bucket = count - prev_count
            if in_bucket <= 0:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / in_bucket
        prev_bound, prev_count = bound, count
    return prev_bound


def extract(text: str, config: MetricsConfig, models: Iterable[str]) -> dict[str, Cumulative]:
    """Cumulative values per model from one Prometheus text exposition."""
    wanted = set(models)
    label = config.model_label
    req_names = {config.requests_metric, config.requests_metric + "_total"}
    err_names = {config.errors_metric, config.errors_metric + "_total"}
    bucket_name = config.latency_histogram + "_bucket"
    series: dict[str, list[tuple[str | None, dict[str, str], float]]] = {
        "req": [], "err": [], "bucket": [], "drift": [],
    }  # fmt: skip
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            kind = (
                "req" if s.name in req_names
                else "err" if s.name in err_names
                else "bucket" if s.name == bucket_name
                else "drift" if config.drift_metric is not None and s.name == config.drift_metric
                else None
            )  # fmt: skip
            if kind is not None:
                series[kind].append((s.labels.get(label), s.labels, float(s.value)))

    def pick(kind: str, model: str) -> list[tuple[dict[str, str], float]]:
        rows = series[kind]
        if any(owner is not None for owner, _, _ in rows):
            return [(labels, v) for owner, labels, v in rows if owner == model]
        return [(labels, v) for _, labels, v in rows]

    out: dict[str, Cumulative] = {}
    for model in wanted:
        reqs = pick("req", model)
        if not reqs:
            continue
        by_le: dict[float, float] = {}
        for labels, v in pick("bucket", model):
            try:
                le = float(labels.get("le", "nan"))
            except ValueError:
                continue
            if not math.isnan(le):
                by_le[le] = by_le.get(le, 0.0) + v
        drifts = [v for _, v in pick("drift", model) if not math.isnan(v)]
        out[model] = Cumulative(
            requests=sum(v for _, v in reqs),
            errors=sum(v for _, v in pick("err", model)),
            buckets=tuple(sorted(by_le.items())),
            drift=max(drifts) if drifts else None,
        )
    return out


def window_between(
    running: RunningModel,
    before: Cumulative,
    after: Cumulative,
    *,
    seconds: float,
    end: str,
) -> HealthWindow | None:
    """The aggregates between two scrapes, or None after a counter reset."""
    requests = after.requests - before.requests
    errors = after.errors - before.errors
    if requests < 0 or errors < 0:
        return None
    before_counts = dict(before.buckets)
    delta = [(le, count - before_counts.get(le, 0.0)) for le, count in after.buckets]
    if any(count < 0 for _, count in delta):
        delta = []
    p50, p95 = quantile(0.5, delta), quantile(0.95, delta)
    return HealthWindow(
        model=running.model,
        version=running.version,
        window_seconds=round(seconds, 3),
        window_end=end,
        requests=round(requests),
        errors=round(errors),
        latency_p50_ms=p50 * 1000 if p50 is not None else None,
        latency_p95_ms=p95 * 1000 if p95 is not None else None,
        drift_score=after.drift,
    )


class PrometheusHealthSource:
    """Scrapes the local inference server's ``/metrics`` and reports per-window deltas."""

    def __init__(
        self,
        config: MetricsConfig,
        session: aiohttp.ClientSession,
        clock: Clock,
        *,
        gateway: str = "",
    ) -> None:
        self.config = config
        self.gateway = gateway
        self._session = session
        self._clock = clock
        self._previous: dict[str, tuple[str, Cumulative, float]] = {}

    async def _scrape(self) -> str:
        timeout = aiohttp.ClientTimeout(total=min(30.0, self.config.window_seconds))
        async with self._session.get(self.config.url, timeout=timeout) as resp:
            resp.raise_for_status()
            body = await resp.content.read(MAX_SCRAPE_BYTES + 1)
            if len(body) > MAX_SCRAPE_BYTES:
                raise ValueError(f"metrics page larger than {MAX_SCRAPE_BYTES} bytes")
            return body.decode("utf-8", errors="replace")

    async def sample(self, running: Sequence[RunningModel]) -> list[HealthWindow]:
        try:
            text = await self._scrape()
            current = extract(text, self.config, (r.model for r in running))
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
            log.warning(
                "gateway %s: metrics %s: scrape failed: %s", self.gateway, self.config.url, exc
            )
            return []
        now = self._clock.monotonic()
        end = isoformat(self._clock.now())
        windows: list[HealthWindow] = []
        for r in running:
            cur = current.get(r.model)
            prev = self._previous.get(r.model)
            if cur is None:
                self._previous.pop(r.model, None)
                continue
            self._previous[r.model] = (r.version, cur, now)
            if prev is None or prev[0] != r.version:
                continue
            window = window_between(r, prev[1], cur, seconds=now - prev[2], end=end)
            if window is not None:
                windows.append(window)
        for gone in set(self._previous) - {r.model for r in running}:
            del self._previous[gone]
        return windows
