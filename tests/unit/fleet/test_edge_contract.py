"""One set of edge-protocol rules: what the agent emits the fleet API accepts, and whatever the
fleet API accepts and writes to EdgeGateway status the operator can read back.

Issue 10: a report with ``window: "0.5s"`` used to be accepted and written, and the operator,
which reads windows with the ModelRelease duration grammar, then ignored that gateway entirely.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import hypothesis
import hypothesis.strategies as st

from modelfleet.agent.protocol import HealthWindow, ModelReport, ModelState, Report
from modelfleet.api import parse_gateway
from modelfleet.core.times import parse_duration
from modelfleet.fleet.coalesce import CoalescePolicy, plan_status_patch
from modelfleet.protocol import ProtocolError, decode_json, parse_report
from modelfleet.protocol.openapi import document
from modelfleet.protocol.rules import DIGEST_RE, MODEL_RE, VERSION_RE, WINDOW_RE, matches

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
versions = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,12}", fullmatch=True)
digests = st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)


@st.composite
def agent_reports(draw: st.DrawFn) -> Report:
    models = draw(st.lists(names, unique=True, max_size=4))
    reports = tuple(
        ModelReport(
            model=m,
            version=draw(versions),
            digest=draw(digests),
            slot=draw(st.sampled_from(["A", "B", ""])),
            state=draw(st.sampled_from(list(ModelState))),
            message=draw(st.text(max_size=2000)),
        )
        for m in models
    )
    health = []
    for m in models:
        requests = draw(st.integers(0, 10**9))
        p50 = draw(st.none() | st.floats(0, 1e8))
        p95 = None if p50 is None else draw(st.floats(p50, 1e9))
        health.append(
            HealthWindow(
                model=m,
                version=draw(versions),
                window_seconds=draw(st.floats(0.001, 86_400.0)),
                window_end="2026-01-02T03:04:05Z",
                requests=requests,
                errors=draw(st.integers(0, requests)),
                latency_p50_ms=p50,
                latency_p95_ms=p95,
                drift_score=draw(st.none() | st.floats(-1.0, 1e7)),
            )
        )
    return Report(agent_version="0.1.0", models=reports, health=tuple(health))


def _gateway_object(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "EdgeGateway",
        "metadata": {"name": "gw-1", "namespace": "retail", "labels": {"ring": "early"}},
        "spec": {"certificateFingerprint": "sha256:" + "c" * 64},
        "status": status,
    }


@hypothesis.given(agent_reports())
@hypothesis.settings(max_examples=150, deadline=None, database=None)
def test_what_the_agent_sends_is_accepted_and_what_is_written_the_operator_reads(
    sent: Report,
) -> None:
    wire = json.dumps(sent.to_json()).encode()
    accepted = parse_report(decode_json(wire))  # no ProtocolError: the agent keeps the rules
    patch = plan_status_patch({}, accepted, now=NOW, in_active_cohort=True, policy=CoalescePolicy())
    assert patch is not None
    gateway = parse_gateway(_gateway_object(patch.status))  # no ConfigError
    assert set(gateway.models) == {m.model for m in sent.models}
    for h in gateway.health:
        assert h.window is not None and h.window.total_seconds() > 0


@hypothesis.given(st.from_regex(WINDOW_RE, fullmatch=True))
@hypothesis.settings(max_examples=300, deadline=None, database=None)
def test_every_window_the_fleet_api_accepts_is_a_duration_the_operator_reads(
    window: str,
) -> None:
    parse_duration(window, field="window")


@hypothesis.given(st.text(max_size=12))
@hypothesis.settings(max_examples=300, deadline=None, database=None)
def test_a_window_the_operator_cannot_read_is_refused(window: str) -> None:
    body = {
        "agentVersion": "1",
        "models": [],
        "health": [{"model": "m", "version": "1", "window": window, "requests": 1, "errors": 0}],
    }
    try:
        parse_report(body)
    except ProtocolError as err:
        assert err.field == "health[0].window"
    else:  # accepted: then the operator reads it, exactly as sent
        parse_duration(window, field="window")
        assert window == window.strip()


def test_the_published_patterns_are_the_rules() -> None:
    schemas = document()["components"]["schemas"]
    assert schemas["HealthSample"]["properties"]["window"]["pattern"] == WINDOW_RE.pattern
    assert schemas["DesiredModel"]["properties"]["digest"]["pattern"] == DIGEST_RE.pattern
    assert not matches(VERSION_RE, "1.0.0\n") and not matches(MODEL_RE, "m\n")
