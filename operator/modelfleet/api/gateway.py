"""Parsing EdgeGateway objects into :class:`modelfleet.core.types.Gateway` views.

Only what rollout decisions and the fleet API need: identity, labels, reported model states and
health. Status is written by the fleet API; a malformed entry is a
:class:`~modelfleet.errors.ConfigError` naming the gateway and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelfleet.api.fields import EDGEGATEWAY_FIELDS
from modelfleet.api.release import object_name
from modelfleet.core.doc import Node
from modelfleet.core.durations import DurationError, parse_duration
from modelfleet.core.types import Gateway, HealthReport, ModelState, ModelStateKind


def _model_state(node: Node) -> ModelState:
    state_text = node.string("state") or ModelStateKind.IDLE.value
    try:
        state = ModelStateKind(state_text)
    except ValueError:
        allowed = ", ".join(s.value for s in ModelStateKind)
        raise node.error("state", f"{state_text!r} is not one of {allowed}") from None
    return ModelState(
        model=node.required_string("model"),
        version=node.string("version"),
        digest=node.string("digest"),
        state=state,
        slot=node.string("slot") or None,
        message=node.string("message"),
        since=node.timestamp("since"),
    )


def _health(node: Node) -> HealthReport:
    window_text = node.string("window")
    window = None
    if window_text:
        try:
            window = parse_duration(window_text, field="window")
        except DurationError:
            raise node.error("window", f"{window_text!r} is not a duration such as 5m") from None
    return HealthReport(
        model=node.required_string("model"),
        version=node.string("version"),
        window=window,
        window_end=node.timestamp("windowEnd"),
        requests=node.integer("requests", minimum=0) or 0,
        errors=node.integer("errors", minimum=0) or 0,
        latency_p50_ms=node.number("latencyP50Ms", minimum=0.0),
        latency_p95_ms=node.number("latencyP95Ms", minimum=0.0),
        drift_score=node.number("driftScore"),
    )


def parse_gateway(body: Mapping[str, Any]) -> Gateway:
    """An EdgeGateway object as a :class:`Gateway` (labels, reports, identity)."""
    root = Node(body, registry=EDGEGATEWAY_FIELDS, where=object_name(body, "EdgeGateway"))
    meta = root.node("metadata", required=True)
    assert meta is not None
    spec = root.node("spec")
    status = root.node("status")
    models: dict[str, ModelState] = {}
    health: tuple[HealthReport, ...] = ()
    last_seen = agent_version = None
    if status is not None:
        for entry in status.nodes("models"):
            state = _model_state(entry)
            models[state.model] = state
        health = tuple(_health(entry) for entry in status.nodes("health"))
        last_seen = status.timestamp("lastSeen")
        agent_version = status.string("agentVersion")
    return Gateway(
        name=meta.required_string("name"),
        namespace=meta.string("namespace") or "default",
        labels=meta.string_map("labels"),
        models=models,
        health=health,
        last_seen=last_seen,
        certificate_fingerprint=None if spec is None else spec.string("certificateFingerprint"),
        agent_version=agent_version,
    )
