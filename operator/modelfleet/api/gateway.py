"""Parsing EdgeGateway objects into :class:`modelfleet.core.types.Gateway` views.

Only what rollout decisions and the fleet API need: identity, labels, reported model states and
health. Status is written by the fleet API; a malformed entry is a
:class:`~modelfleet.errors.ConfigError` naming the gateway and the field.

:func:`readable_gateway` is what the operator uses: a gateway whose status cannot be read in full
still exists and stays in its cohorts (its labels decide that), counted with what *can* be read
and without the rest — assigned but not reporting, never absent. A gateway dropped for one
unreadable field would leave its cohort, and gates pass on an empty cohort.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from modelfleet.api.fields import EDGEGATEWAY_FIELDS
from modelfleet.api.release import object_name
from modelfleet.core.doc import Node
from modelfleet.core.gateway import Gateway, HealthReport, ModelState, ModelStateKind
from modelfleet.core.times import DurationError, parse_duration
from modelfleet.errors import ConfigError


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


def _entries(status: Node, key: str, where: str) -> list[Node]:
    """Each object of the array ``status.<key>`` as a node of its own (other items skipped)."""
    raw = status.raw(key)
    if not isinstance(raw, list):
        return []
    return [
        Node({key: [item]}, registry=EDGEGATEWAY_FIELDS, where=where, path="status",
             schema="status").nodes(key)[0]
        for item in raw
        if isinstance(item, Mapping)
    ]  # fmt: skip


def _salvage(body: Mapping[str, Any]) -> Gateway:
    """Identity and labels, plus each status entry that parses on its own (the rest dropped)."""
    where = object_name(body, "EdgeGateway")
    root = Node(body, registry=EDGEGATEWAY_FIELDS, where=where)
    meta = root.node("metadata", required=True)
    assert meta is not None
    name = meta.required_string("name")
    namespace = meta.string("namespace") or "default"
    labels = meta.string_map("labels")  # unreadable labels: no cohort can be known; raise
    fingerprint = None
    with contextlib.suppress(ConfigError):
        spec = root.node("spec")
        fingerprint = None if spec is None else spec.string("certificateFingerprint")
    models: dict[str, ModelState] = {}
    health: list[HealthReport] = []
    last_seen = agent_version = None
    status = None
    with contextlib.suppress(ConfigError):
        status = root.node("status")
    if status is not None:
        for entry in _entries(status, "models", where):
            with contextlib.suppress(ConfigError):
                state = _model_state(entry)
                models[state.model] = state
        for entry in _entries(status, "health", where):
            with contextlib.suppress(ConfigError):
                health.append(_health(entry))
        with contextlib.suppress(ConfigError):
            last_seen = status.timestamp("lastSeen")
        with contextlib.suppress(ConfigError):
            agent_version = status.string("agentVersion")
    return Gateway(
        name=name,
        namespace=namespace,
        labels=labels,
        models=models,
        health=tuple(health),
        last_seen=last_seen,
        certificate_fingerprint=fingerprint,
        agent_version=agent_version,
    )


def readable_gateway(body: Mapping[str, Any]) -> tuple[Gateway, ConfigError | None]:
    """The gateway as far as it can be read, and what could not be (``None``: all of it).

    Raises :class:`ConfigError` only when the object's name or labels are unreadable (then no
    cohort can be known for it)."""
    try:
        return parse_gateway(body), None
    except ConfigError as exc:
        return _salvage(body), exc


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
