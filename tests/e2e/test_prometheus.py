"""Debian's Prometheus scrapes the real operator, fleet API and simulated agents (one process,
20 gateways running the real agent code) through a release that succeeds and one that aborts at
its canary; the series are read back through Prometheus's HTTP API. The same Prometheus loads
the alert rules of manifests/monitoring (the abort alert fires) and answers every query of the
Grafana dashboard with data."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

import pytest

from modelfleet.core.phases import Phase
from modelfleet.demo.models import ModelShelf
from modelfleet.demo.stack import FleetApiSettings, OperatorSettings, SimulatorSettings, Stack
from modelfleet.demo.watch import Observer
from modelfleet.devcluster import free_port
from tests.monitoring import Prometheus, dashboard_queries, write_rules

from .loop import MODEL, apply_release, release_body, wait_for

pytestmark = pytest.mark.cluster

GATEWAYS = 20
PREFIX = "gw"
STEPS = [{"name": "canary", "percent": 20, "bake": "1s"}, {"name": "fleet", "percent": 100}]
GATES = {"maxFailedGateways": 0, "maxErrorRate": 0.05, "minReportingRatio": 0.8, "minRequests": 20}


def release(shelf: ModelShelf, version: str) -> dict[str, Any]:
    return release_body(shelf, version, STEPS, GATES)


def raw_status(observer: Observer) -> dict[str, Any]:
    obj = observer.custom.get_namespaced_custom_object(
        "modelfleet.dev", "v1alpha1", observer.namespace, "modelreleases", observer.name
    )
    status: dict[str, Any] = obj["status"]
    return status


def value(prom: Prometheus, expr: str) -> float:
    """The single value ``expr`` evaluates to (NaN when it returns nothing)."""
    result = prom.query(expr)
    assert len(result) <= 1, f"{expr}: {result}"
    return float(result[0]["value"][1]) if result else math.nan


def scraped_value(prom: Prometheus, expr: str, ok: Any, timeout: float = 30.0) -> float:
    """``expr``'s value once ``ok(value)`` holds: what the operator exports reaches Prometheus
    at its next scrape, not at once (the last value seen is returned for the assertion)."""
    deadline = time.monotonic() + timeout
    got = value(prom, expr)
    while not ok(got) and time.monotonic() < deadline:
        time.sleep(0.5)
        got = value(prom, expr)
    return got


def test_prometheus_scrapes_the_operator_fleet_api_and_agents_through_a_rollout_and_an_abort(
    stack: Stack, shelf: ModelShelf, observer: Observer, tmp_path: Path
) -> None:
    operator_port, agents_port = free_port(), free_port()
    stack.fleet_ca_init()
    stack.start_fleet_api(FleetApiSettings())
    stack.start_operator(
        OperatorSettings(
            file_roots=(shelf.root,),
            extra=("--metrics-port", str(operator_port), "--metrics-host", "127.0.0.1"),
        )
    )
    stack.start_simulator(
        SimulatorSettings(
            gateways=GATEWAYS,
            prefix=PREFIX,
            # 20 requests/s: the canary step may hold a single gateway (20 % of 20, by hash),
            # whose 2 s windows must carry the gates' 20 requests on their own
            behaviour={
                "1.0.0": {"requestsPerSecond": 20},
                "2.0.0": {"errorRate": 0.4, "requestsPerSecond": 20},
            },
            extra=("--metrics-port", str(agents_port)),
        ),
        trust_policy=shelf.write_policy(tmp_path / "trust-policy.yaml"),
    )
    from kubernetes import client

    client.CustomObjectsApi(stack.api).create_cluster_custom_object(
        "modelfleet.dev", "v1alpha1", "trustpolicies", shelf.policy_manifest()
    )
    assert stack.fleet_metrics_url is not None
    fleet_target = stack.fleet_metrics_url.removeprefix("http://").removesuffix("/metrics")
    targets = {
        "operator": f"127.0.0.1:{operator_port}",
        "fleet-api": fleet_target,
        "agents": f"127.0.0.1:{agents_port}",
    }
    with Prometheus(tmp_path / "prometheus", targets, rules=write_rules(tmp_path)) as prom:
        prom.wait(
            lambda: value(prom, 'count(up{job=~"operator|fleet-api|agents"} == 1)') == 3,
            60, "all three targets up",
        )  # fmt: skip

        apply_release(stack, release(shelf, "1.0.0"))
        wait_for(
            observer, stack,
            lambda v: v.release.phase == "Succeeded" and v.all_on("1.0.0"),
            timeout=120, what="1.0.0 on every gateway",
        )  # fmt: skip
        apply_release(stack, release(shelf, "2.0.0"))
        wait_for(
            observer, stack,
            lambda v: v.release.phase == "Aborted" and v.all_on("1.0.0"),
            timeout=120, what="2.0.0 aborted and every gateway back on 1.0.0",
        )  # fmt: skip
        prom.wait(
            lambda: value(prom, "sum(modelfleet_operator_time_to_rollback_seconds_count)") >= 1
            and value(prom, 'sum(modelfleet_agent_models{state="Active"})') == GATEWAYS,
            60, "the rollback to be observed by Prometheus",
        )  # fmt: skip
        ns = stack.namespace
        mine = f'namespace="{ns}",release="{MODEL}"'

        # Operator: phase (one series per phase, the current one 1), step, cohorts, gates.
        phases = prom.query(f"modelfleet_operator_release_phase{{{mine}}}")
        assert {s["metric"]["phase"] for s in phases} == {p.value for p in Phase}
        assert [s["metric"]["phase"] for s in phases if s["value"][1] == "1"] == ["Aborted"]
        assert value(prom, f"modelfleet_operator_release_steps{{{mine}}}") == len(STEPS)
        assert value(prom, f"modelfleet_operator_release_step{{{mine}}}") == 0  # the canary
        assert prom.labels(f"modelfleet_operator_cohort_gateways{{{mine}}}", "cohort") == {
            "canary", "fleet",
        }  # fmt: skip
        assert (
            value(prom, f'sum(modelfleet_operator_cohort_gateways{{{mine},count="assigned"}})')
            == GATEWAYS
        )
        assert {"Pass", "Fail"} <= prom.labels(
            f"modelfleet_operator_gate_evaluations_total{{{mine}}}", "result"
        )
        assert value(prom, f'modelfleet_operator_gate_value{{{mine},gate="error_rate"}}') > 0.05
        assert (
            value(prom, f'modelfleet_operator_gate_threshold{{{mine},gate="max_error_rate"}}')
            == 0.05
        )
        assert (
            value(
                prom, 'sum(modelfleet_operator_verifications_total{result="verified",check="none"})'
            )
            >= 2
        )
        assert value(prom, "sum(modelfleet_operator_time_to_abort_seconds_count)") == 1
        assert value(prom, "sum(modelfleet_operator_time_to_rollback_seconds_count)") == 1
        assert {"status", "event"} <= prom.labels("modelfleet_operator_api_writes_total", "kind")
        # Gateways per version and state: all 20 back on 1.0.0, Active.
        by_version = prom.query(
            f'sum by (version, state) (modelfleet_operator_gateway_models{{namespace="{ns}"}})'
        )
        assert [
            (s["metric"]["version"], s["metric"]["state"], s["value"][1]) for s in by_version
        ] == [("1.0.0", "Active", str(GATEWAYS))]
        assert value(prom, f'modelfleet_operator_gateways{{namespace="{ns}"}}') == GATEWAYS
        assert value(prom, f'modelfleet_operator_gateways_silent{{namespace="{ns}"}}') == 0

        # Fleet API: requests and latency by route and code, connections, lag, certificates.
        assert {"/v1/desired", "/v1/report"} <= prom.labels(
            'modelfleet_fleet_api_requests_total{code="200"}', "route"
        )
        assert "200" in prom.labels("modelfleet_fleet_api_request_seconds_count", "code")
        assert prom.query("modelfleet_fleet_api_connections")
        assert value(prom, "sum(modelfleet_fleet_api_status_lag_seconds_count)") > 0
        expiry = value(
            prom, 'modelfleet_fleet_api_certificate_expiry_timestamp_seconds{certificate="serving"}'
        )
        assert expiry > time.time()

        # Agents: every gateway downloaded, verified and activated both versions at least once.
        for stage in ("download", "verify", "activate"):
            done = f'modelfleet_agent_stage_seconds_count{{stage="{stage}",result="ok"}}'
            assert value(prom, done) >= GATEWAYS, stage
        assert value(prom, 'modelfleet_agent_slot_switches_total{reason="activate"}') >= GATEWAYS

        # Bounded labels: no series anywhere carries a gateway name.
        series = prom.api("series", **{"match[]": '{__name__=~"modelfleet_.*"}'})
        gateway_name = re.compile(rf"^{PREFIX}-?\d+")
        named = [s for s in series if any(gateway_name.match(v) for v in s.values())]
        assert not named, named[:3]

        # Alerts: the rules load, and the abort alert fires for this release.
        rules = prom.api("rules")["groups"]
        assert all(r["health"] == "ok" for g in rules for r in g["rules"]), rules
        prom.wait(
            lambda: prom.query(
                f'ALERTS{{alertname="ModelfleetRolloutAborted",alertstate="firing",{mine}}}'
            ),
            30, "the abort alert to fire",
        )  # fmt: skip

        # Dashboard: every panel query answers with data.
        for title, expr in dashboard_queries():
            assert prom.query(expr), f"panel {title!r}: no data for {expr}"


def test_a_query_gate_on_the_fleets_telemetry_aborts_a_rollout_and_no_data_never_passes(
    stack: Stack, shelf: ModelShelf, observer: Observer, tmp_path: Path
) -> None:
    """``gates.prometheus`` against the real Prometheus: the operator queries it (and core
    judges): 1.0.0 passes the gate, 2.0.0 (every activation fails) is aborted by the query gate
    alone (the built-in failed-gateway gate is set out of reach), and 3.0.0, whose query has no
    data, holds its canary as Inconclusive instead of passing."""
    operator_port, agents_port = free_port(), free_port()
    stack.fleet_ca_init()
    stack.start_fleet_api(FleetApiSettings())
    targets = {"operator": f"127.0.0.1:{operator_port}", "agents": f"127.0.0.1:{agents_port}"}
    with Prometheus(tmp_path / "prometheus", targets) as prom:
        stack.start_operator(
            OperatorSettings(
                file_roots=(shelf.root,),
                extra=(
                    "--metrics-port", str(operator_port), "--metrics-host", "127.0.0.1",
                    "--prometheus-url", prom.url,
                    "--report-interval", "1",  # the simulator's: a short first-report grace
                ),
            )
        )  # fmt: skip
        stack.start_simulator(
            SimulatorSettings(
                gateways=10,
                behaviour={"2.0.0": {"activationFailureRate": 1.0}},
                extra=("--metrics-port", str(agents_port)),
            ),
            trust_policy=shelf.write_policy(tmp_path / "trust-policy.yaml"),
        )
        from kubernetes import client

        client.CustomObjectsApi(stack.api).create_cluster_custom_object(
            "modelfleet.dev", "v1alpha1", "trustpolicies", shelf.policy_manifest()
        )
        prom.wait(
            lambda: value(prom, 'count(up{job=~"operator|agents"} == 1)') == 2,
            60, "both targets up",
        )  # fmt: skip
        rolled_back = 'sum(modelfleet_agent_models{state="RolledBack"}) or vector(0)'

        def gated(version: str, query: str) -> dict[str, Any]:
            body = release(shelf, version)
            body["spec"]["rollout"]["gates"] = {
                "maxFailedGateways": 1000,
                "minReportingRatio": 0.0,
                "prometheus": [{"name": "rolled-back", "query": query, "max": 0}],
            }
            return body

        apply_release(stack, gated("1.0.0", rolled_back))
        wait_for(
            observer, stack, lambda v: v.release.phase == "Succeeded" and v.all_on("1.0.0"),
            timeout=120, what="1.0.0 through its query gate",
        )  # fmt: skip

        apply_release(stack, gated("2.0.0", rolled_back))
        view = wait_for(
            observer, stack, lambda v: v.release.phase == "Aborted" and v.all_on("1.0.0"),
            timeout=120, what="2.0.0 aborted by its query gate",
        )  # fmt: skip
        assert view.release.gate_reason == "QueryGateFailed"
        status = raw_status(observer)
        assert status["reason"] == "QueryGateFailed"
        assert "query gate rolled-back:" in status["message"]
        assert "above max 0" in status["message"]
        ns = stack.namespace
        expr = f'modelfleet_operator_gate_value{{namespace="{ns}",gate="query:rolled-back:high"}}'
        assert scraped_value(prom, expr, lambda v: v > 0) > 0

        apply_release(stack, gated("3.0.0", 'sum(modelfleet_no_such_series{job="agents"})'))
        wait_for(
            observer, stack,
            lambda v: v.release.spec_version == "3.0.0" and v.release.phase == "Paused",
            timeout=120, what="3.0.0 held as Inconclusive without data",
        )  # fmt: skip
        status = raw_status(observer)
        assert status["reason"] == "Inconclusive"
        assert status["rollout"]["gates"]["reason"] == "QueryNoData"
        assert status["rollout"]["step"] == 0
