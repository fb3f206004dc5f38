"""The query-gate client: every way of not getting a number is *no data* (None), never a
figure that could pass a gate. Against a small aiohttp server answering as Prometheus would;
the real Prometheus is exercised by tests/e2e/test_prometheus.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from modelfleet.controller.promql import MAX_ANSWER_BYTES, PrometheusQueries
from modelfleet.core.types import QueryGate, QuerySample
from modelfleet.devcluster import free_port
from tests.webserve import WebServer

GATE = QueryGate("errors", "rate(errors_total[1m])", max=0.1)


def vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {}, "value": [0, v]} for v in values]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


Answer = Callable[[str], web.Response]


@pytest.fixture
async def prometheus(web_server: WebServer) -> tuple[str, list[Answer]]:
    answers: list[Answer] = []

    async def query(request: web.Request) -> web.Response:
        return answers[0](request.query["query"])

    app = web.Application()
    app.router.add_get("/api/v1/query", query)
    return await web_server(app), answers


async def test_a_figure_is_read(prometheus: tuple[str, list[Answer]]) -> None:
    url, answers = prometheus
    answers.append(lambda q: web.json_response(vector("0.5" if q.startswith("max") else "0.25")))
    got = await PrometheusQueries(url).evaluate([GATE], "test")
    assert got == {"errors": QuerySample(high=0.5, low=0.25)}


@pytest.mark.parametrize(
    "answer",
    [
        lambda q: web.json_response(vector()),  # no series
        lambda q: web.json_response(vector("NaN")),
        lambda q: web.json_response(
            {"status": "error", "errorType": "bad_data", "error": "parse error"}, status=400
        ),
        lambda q: web.Response(text="<html>proxy</html>"),
        lambda q: web.json_response({"status": "success", "data": {"result": [{}]}}),
        lambda q: web.Response(body=b"[" * (MAX_ANSWER_BYTES + 10)),
        lambda q: web.Response(body=b"[" * 100_000),
    ],
    ids=["empty", "nan", "error", "not-json", "malformed", "oversized", "nested"],
)
async def test_anything_but_a_number_is_no_data(
    prometheus: tuple[str, list[Answer]], answer: Answer
) -> None:
    url, answers = prometheus
    answers.append(answer)
    assert await PrometheusQueries(url).evaluate([GATE], "test") == {"errors": None}


async def test_an_unreachable_prometheus_is_no_data() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert await PrometheusQueries(url, timeout=2).evaluate([GATE], "test") == {"errors": None}
