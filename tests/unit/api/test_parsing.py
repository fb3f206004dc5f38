"""Parsing ModelRelease / EdgeGateway dicts into core views (TrustPolicy: tests/unit/trust)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelfleet.api import parse_gateway, parse_release, status_to_dict
from modelfleet.core import (
    ActionKind,
    LabelSelector,
    ModelStateKind,
    Operator,
    Phase,
    Requirement,
    RollbackMode,
)
from modelfleet.errors import ConfigError

from .bodies import DIGEST, edgegateway, full_status, modelrelease


def test_full_modelrelease_parses_every_field() -> None:
    r = parse_release(modelrelease(status=full_status()))
    assert (r.name, r.namespace, r.generation) == ("detector", "retail", 3)
    s = r.spec
    assert (s.model, s.version, s.digest, s.trust_policy) == (
        "detector",
        "2.1.0",
        DIGEST,
        "prod-signers",
    )
    assert s.signature and s.signature.endswith("model.sig")
    assert s.attestations == ("https://models.example.com/detector/2.1.0/prov.json",)
    assert s.selector == LabelSelector.of(
        {"tier": "retail"},
        Requirement("region", Operator.IN, frozenset({"eu", "us"})),
        Requirement("lab", Operator.DOES_NOT_EXIST),
    )
    assert [(st.name, st.percent, st.bake) for st in s.steps] == [
        ("canary", 5, timedelta(minutes=10)),
        ("early", None, timedelta(minutes=30)),
        ("fleet", 100, timedelta(0)),
    ]
    assert s.gates.max_failed_gateways == 1
    assert s.gates.max_latency_p95_ms == 200.0
    assert s.gates.progress_deadline == timedelta(minutes=15)
    assert s.rollback is RollbackMode.PROGRESSIVE
    assert s.paused is True
    assert r.salt == "s1"
    assert r.action is not None and (r.action.kind, r.action.id) == (ActionKind.PROMOTE, "a1")
    assert r.source is not None and r.source.revision == "0123abcd"
    assert r.status.phase is Phase.PROGRESSING
    assert r.status.rollout.healthy_since == datetime(2026, 1, 1, 0, 1, 0, 500000, tzinfo=UTC)


def test_status_round_trips_through_dicts() -> None:
    r = parse_release(modelrelease(status=full_status()))
    assert status_to_dict(r.status) == full_status()


def test_minimal_modelrelease_gets_documented_defaults() -> None:
    body = modelrelease()
    spec = body["spec"]
    for key in ("gateways", "paused"):
        del spec[key]
    spec["rollout"] = {"steps": [{"name": "all", "percent": 100}]}
    del spec["artifact"]["signature"], spec["artifact"]["attestations"]
    body["metadata"] = {"name": "detector", "namespace": "retail"}
    r = parse_release(body)
    assert r.spec.selector is None
    assert r.spec.rollback is RollbackMode.IMMEDIATE
    assert r.spec.gates.min_reporting_ratio == 0.9
    assert r.spec.gates.progress_deadline is None
    assert r.action is None and r.source is None
    assert r.status.phase is Phase.PENDING
    assert r.salt == "retail/detector"


def _edit(path: str, value: Any) -> dict[str, Any]:
    body = modelrelease()
    node: Any = body
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is _DELETE:
        del node[keys[-1]]
    elif keys[-1].isdigit():
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value
    return body


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("spec.model", _DELETE, r"spec\.model: is required"),
        ("spec.model", "Detector", r"spec\.model: .* DNS label"),
        ("spec.version", 2, r"spec\.version: expected a string"),
        ("spec.artifact.digest", "sha256:abc", r"spec\.artifact\.digest: .*64"),
        ("spec.artifact.uri", "ftp://x", r"spec\.artifact\.uri: .*https://"),
        ("spec.rollout.steps", [], r"spec\.rollout\.steps: needs at least one step"),
        ("spec.rollout.steps.0.percent", 0, r"spec\.rollout\.steps\[0\]\.percent: must be"),
        ("spec.rollout.steps.0.bake", "10 minutes", r"spec\.rollout\.steps\[0\]\.bake: .*duration"),
        (
            "spec.rollout.steps.2.percent",
            90,
            r"steps\[2\]\.percent: the last step must have percent: 100",
        ),
        ("spec.rollout.steps.1.name", "canary", r"steps\[1\]\.name: .*used twice"),
        (
            "spec.rollout.steps.1",
            {"name": "x", "percent": 3},
            r"steps\[1\]\.percent: percents must strictly increase",
        ),
        (
            "spec.rollout.steps.1",
            {"name": "x"},
            r"steps\[1\]\.percent: .*exactly one of percent or selector",
        ),
        ("spec.rollout.gates.maxErrorRate", 1.5, r"gates\.maxErrorRate: must be between"),
        (
            "spec.rollout.gates.maxFailedGateways",
            -1,
            r"gates\.maxFailedGateways: must be at least 0",
        ),
        ("spec.rollout.gates.progressDeadline", "soon", r"gates\.progressDeadline: .*duration"),
        (
            "spec.rollout.rollback",
            "Eventually",
            r"spec\.rollout\.rollback: .*Immediate or Progressive",
        ),
        ("spec.paused", "yes", r"spec\.paused: expected true or false"),
        (
            "spec.gateways.selector.matchExpressions",
            [{"key": "a", "operator": "In"}],
            r"matchExpressions\[0\]\.values: operators In and NotIn need values",
        ),
        (
            "spec.gateways.selector.matchExpressions",
            [{"key": "a", "operator": "Gt", "values": ["1"]}],
            r"matchExpressions\[0\]\.operator: 'Gt' is not one of",
        ),
        ("status", {"phase": "Exploded"}, r"status\.phase: unknown phase"),
        (
            "status",
            {"rollout": {"stepStartedAt": "yesterday"}},
            r"status\.rollout\.stepStartedAt: .*RFC 3339",
        ),
    ],
)
def test_bad_modelrelease_names_object_and_field(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^ModelRelease retail/detector: .*" + message):
        parse_release(_edit(path, value))


def test_action_without_id_gets_a_generated_one_shot_id() -> None:
    r = parse_release(_edit("metadata.annotations", {"modelfleet.dev/action": "Abort"}))
    assert r.action is not None
    assert (r.action.kind, r.action.id, r.action.generated_id) == (
        ActionKind.ABORT,
        "auto:abort",
        True,
    )


def test_unknown_action_keeps_the_release_readable() -> None:
    r = parse_release(
        _edit(
            "metadata.annotations",
            {"modelfleet.dev/action": "nuke", "modelfleet.dev/action-id": "1"},
        )
    )
    assert r.action is not None
    assert (r.action.kind, r.action.id, r.action.name) == (None, "1", "nuke")


def test_edgegateway_parses_reports_and_identity() -> None:
    g = parse_gateway(edgegateway())
    assert (g.name, g.namespace, dict(g.labels)) == ("gw-1", "retail", {"ring": "early"})
    assert g.certificate_fingerprint == DIGEST
    assert g.agent_version == "0.1.0"
    assert g.last_seen == datetime(2026, 1, 1, tzinfo=UTC)
    m = g.models["detector"]
    assert (m.version, m.digest, m.state, m.slot) == ("2.1.0", DIGEST, ModelStateKind.ACTIVE, "B")
    h = g.health_for("detector", "2.1.0")
    assert h is not None and (h.requests, h.errors, h.window) == (100, 1, timedelta(minutes=5))


def test_edgegateway_without_status_has_no_reports() -> None:
    body = edgegateway()
    del body["status"]
    g = parse_gateway(body)
    assert g.models == {} and g.health == () and g.last_seen is None


def test_edgegateway_with_unknown_state_names_the_field() -> None:
    body = edgegateway()
    body["status"]["models"][0]["state"] = "Exploded"
    with pytest.raises(ConfigError, match=r"EdgeGateway retail/gw-1: status\.models\[0\]\.state"):
        parse_gateway(body)
