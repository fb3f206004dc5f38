"""Query gates (``spec.rollout.gates.prometheus``): core judges the figures the controller
measured; no data is Inconclusive and never a pass; the spec is parsed with clear errors."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from modelfleet.api import parse_release
from modelfleet.controller.promql import expressions
from modelfleet.core import GateResult, Gates, Measurement, judge
from modelfleet.core.gates import explain
from modelfleet.core.types import QueryGate, QuerySample
from modelfleet.errors import ConfigError

from ..api.bodies import modelrelease
from .factories import T0

ERRORS = QueryGate("service-errors", "rate(errors_total[1m])", max=0.05, for_=timedelta(seconds=30))
TRAFFIC = QueryGate("traffic", "rate(requests_total[1m])", min=10.0)
GATES = Gates(min_reporting_ratio=0.9, prometheus=(ERRORS, TRAFFIC))
HEALTHY = Measurement(assigned=10, active=10, reporting=10, requests=1000, errors=0)
GOOD = {"service-errors": QuerySample(high=0.01, low=0.0), "traffic": QuerySample(50.0, 20.0)}


@pytest.mark.parametrize(
    ("queries", "measured", "result", "reason"),
    [
        (GOOD, HEALTHY, GateResult.PASS, "GatesHeld"),
        ({**GOOD, "service-errors": QuerySample(0.2, 0.0)}, HEALTHY, GateResult.FAIL,
         "QueryGateFailed"),
        ({**GOOD, "traffic": QuerySample(50.0, 3.0)}, HEALTHY, GateResult.FAIL,
         "QueryGateFailed"),
        # a bound exactly met holds
        ({**GOOD, "service-errors": QuerySample(0.05, 0.05)}, HEALTHY, GateResult.PASS,
         "GatesHeld"),
        # no data: never a pass, even where everything else holds or nobody is exposed
        ({**GOOD, "traffic": None}, HEALTHY, GateResult.INCONCLUSIVE, "QueryNoData"),
        ({"traffic": GOOD["traffic"]}, HEALTHY, GateResult.INCONCLUSIVE, "QueryNoData"),
        ({}, Measurement(), GateResult.INCONCLUSIVE, "QueryNoData"),
        # a failing query aborts even while the cohort still converges
        ({**GOOD, "service-errors": QuerySample(0.2, 0.1)}, replace(HEALTHY, waiting=3),
         GateResult.FAIL, "QueryGateFailed"),
        # while converging with data, Wait as usual
        (GOOD, replace(HEALTHY, waiting=3), GateResult.WAIT, "NotConverged"),
    ],
)  # fmt: skip
def test_judge_with_query_gates(
    queries: dict[str, QuerySample | None], measured: Measurement, result: GateResult, reason: str
) -> None:
    verdict = judge(GATES, measured, T0, queries)
    assert (verdict.result, verdict.reason) == (result, reason)


def test_explain_names_the_gate_its_figure_and_bound() -> None:
    queries = {**GOOD, "service-errors": QuerySample(0.2, 0.1)}
    verdict = judge(GATES, HEALTHY, T0, queries)
    assert explain(GATES, verdict, HEALTHY, queries) == (
        "query gate service-errors: 0.2 above max 0.05 for 30s"
    )
    silent = judge(GATES, HEALTHY, T0, {"service-errors": GOOD["service-errors"]})
    assert "traffic" in explain(GATES, silent, HEALTHY, {})


def test_the_controller_asks_for_the_value_held_throughout_the_window() -> None:
    assert expressions(ERRORS) == (
        "max(min_over_time((rate(errors_total[1m]))[30000ms:]))",
        "min(max_over_time((rate(errors_total[1m]))[30000ms:]))",
    )
    assert expressions(TRAFFIC) == (
        "max((rate(requests_total[1m])))",
        "min((rate(requests_total[1m])))",
    )


def _with_gates(gates: list[dict[str, Any]]) -> dict[str, Any]:
    body = copy.deepcopy(modelrelease())
    body["spec"]["rollout"].setdefault("gates", {})["prometheus"] = gates
    return body


def test_query_gates_parse() -> None:
    release = parse_release(
        _with_gates(
            [
                {
                    "name": "service-errors",
                    "query": "rate(errors_total[1m])",
                    "max": 0.05,
                    "for": "30s",
                },
                {"name": "traffic", "query": "rate(requests_total[1m])", "min": 10},
            ]
        )
    )
    assert release.spec.gates.prometheus == (ERRORS, TRAFFIC)


@pytest.mark.parametrize(
    ("gates", "message"),
    [
        ([{"name": "a", "query": "up"}], "needs max, min or both"),
        ([{"name": "a", "query": "up", "max": 1, "min": 2}], "min 2 is above max 1"),
        ([{"name": "A b", "query": "up", "max": 1}], "must be a DNS label"),
        ([{"name": "a", "query": "up", "max": 1}] * 2, "used twice"),
        ([{"name": "a", "query": "up", "max": 1, "for": "soon"}], "not a duration"),
        ([{"name": "a", "query": "x" * 2001, "max": 1}], "PromQL expression"),
        ([{"name": "a", "max": 1}], "query"),
    ],
)
def test_bad_query_gates_name_the_field(gates: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ConfigError, match="prometheus") as err:
        parse_release(_with_gates(gates))
    assert message in str(err.value)
