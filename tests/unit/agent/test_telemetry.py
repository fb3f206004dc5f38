"""Prometheus telemetry: parsing, per-model selection, window deltas, histogram quantiles."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from modelfleet.agent.config import MetricsConfig
from modelfleet.agent.telemetry import (
    Cumulative,
    PrometheusHealthSource,
    RunningModel,
    extract,
    quantile,
    window_between,
)
from tests.webserve import WebServer

from .helpers import FastClock

CONFIG = MetricsConfig(
    url="http://127.0.0.1:1/metrics",
    requests_metric="inference_requests_total",
    errors_metric="inference_errors_total",
    latency_histogram="inference_latency_seconds",
    drift_metric="inference_drift_score",
)


def exposition(requests: int, errors: int, buckets: dict[str, int], drift: float = 0.1) -> str:
    lines = [
        "# HELP inference_requests_total Requests.",
        "# TYPE inference_requests_total counter",
        f'inference_requests_total{{model="detector",code="200"}} {requests - errors}',
        f'inference_requests_total{{model="detector",code="500"}} {errors}',
        'inference_requests_total{model="other",code="200"} 999',
        "# TYPE inference_errors_total counter",
        f'inference_errors_total{{model="detector"}} {errors}',
        "# TYPE inference_latency_seconds histogram",
    ]
    for le, count in buckets.items():
        lines.append(f'inference_latency_seconds_bucket{{model="detector",le="{le}"}} {count}')
    lines += [
        f'inference_latency_seconds_count{{model="detector"}} {buckets["+Inf"]}',
        f'inference_latency_seconds_sum{{model="detector"}} {buckets["+Inf"] * 0.02}',
        "# TYPE inference_drift_score gauge",
        f'inference_drift_score{{model="detector"}} {drift}',
    ]
    return "\n".join(lines) + "\n"


def test_quantile_interpolates_inside_the_bucket() -> None:
    buckets = [(0.01, 20.0), (0.05, 80.0), (0.1, 100.0), (float("inf"), 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.01 + 0.04 * (50 - 20) / 60)
    assert quantile(0.95, buckets) == pytest.approx(0.05 + 0.05 * (95 - 80) / 20)


def test_quantile_in_the_inf_bucket_is_the_largest_finite_bound() -> None:
    assert quantile(0.99, [(0.1, 10.0), (float("inf"), 100.0)]) == 0.1


def test_quantile_without_observations_is_none() -> None:
    assert quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    assert quantile(0.5, []) is None


def test_extract_sums_series_of_the_model_and_ignores_others() -> None:
    text = exposition(100, 3, {"0.01": 10, "0.1": 90, "+Inf": 100})
    cum = extract(text, CONFIG, ["detector"])["detector"]
    assert (cum.requests, cum.errors, cum.drift) == (100, 3, 0.1)
    assert cum.buckets == ((0.01, 10.0), (0.1, 90.0), (float("inf"), 100.0))


def test_extract_uses_unlabelled_series_for_a_single_model_server() -> None:
    text = (
        "# TYPE inference_requests_total counter\ninference_requests_total 42\n"
        "# TYPE inference_errors_total counter\ninference_errors_total 2\n"
    )
    cum = extract(text, CONFIG, ["detector"])["detector"]
    assert (cum.requests, cum.errors, cum.buckets, cum.drift) == (42, 2, (), None)


def test_extract_skips_models_without_series() -> None:
    assert extract("", CONFIG, ["detector"]) == {}


def test_window_is_the_delta_between_two_scrapes() -> None:
    before = Cumulative(100, 3, ((0.01, 10.0), (0.1, 90.0), (float("inf"), 100.0)), 0.1)
    after = Cumulative(300, 5, ((0.01, 110.0), (0.1, 290.0), (float("inf"), 300.0)), 0.2)
    w = window_between(RunningModel("detector", "2.0"), before, after, seconds=60, end="t")
    assert w is not None
    assert (w.requests, w.errors, w.drift_score) == (200, 2, 0.2)
    assert w.latency_p50_ms == pytest.approx(10.0)
    assert w.latency_p95_ms == pytest.approx((0.01 + 0.09 * (190 - 100) / 100) * 1000)
    assert w.to_json()["window"] == "60s"


def test_counter_reset_drops_the_window() -> None:
    before = Cumulative(100, 3, (), None)
    after = Cumulative(5, 0, (), None)
    assert window_between(RunningModel("m", "1"), before, after, seconds=60, end="t") is None


@pytest.fixture
async def metrics_server(web_server: WebServer) -> tuple[str, list[str]]:
    pages: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=pages.pop(0), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", handler)
    return await web_server(app) + "/metrics", pages


async def test_source_reports_nothing_on_the_first_scrape_then_deltas(
    metrics_server: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, pages = metrics_server
    pages += [
        exposition(100, 3, {"0.01": 10, "0.1": 90, "+Inf": 100}),
        exposition(300, 5, {"0.01": 110, "0.1": 290, "+Inf": 300}),
        exposition(400, 5, {"0.01": 210, "0.1": 390, "+Inf": 400}),
    ]
    clock = FastClock()
    config = MetricsConfig(**{**CONFIG.__dict__, "url": url})
    async with aiohttp.ClientSession() as session:
        source = PrometheusHealthSource(config, session, clock)
        running = [RunningModel("detector", "2.0")]
        assert await source.sample(running) == []
        clock.t += 60
        [w] = await source.sample(running)
        assert (w.model, w.version, w.requests, w.errors, w.window_seconds) == (
            "detector", "2.0", 200, 2, 60,
        )  # fmt: skip
        clock.t += 60
        # the version changed between scrapes: that window is not attributed to anyone
        assert await source.sample([RunningModel("detector", "3.0")]) == []


async def test_unreachable_metrics_yield_no_windows() -> None:
    config = MetricsConfig(**{**CONFIG.__dict__, "url": "http://127.0.0.1:9/metrics"})
    async with aiohttp.ClientSession() as session:
        source = PrometheusHealthSource(config, session, FastClock())
        assert await source.sample([RunningModel("detector", "1")]) == []
