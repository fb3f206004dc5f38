"""The edge protocol's messages are defined once: the fleet API's validation, the agent's reports
and the published OpenAPI document all come from the same pydantic models."""

from __future__ import annotations

from typing import Any

import pytest

from modelfleet.protocol import (
    HEALTH_FIELDS,
    MODEL_FIELDS,
    HealthSample,
    ModelReport,
    ProtocolError,
    Report,
    parse_report,
)
from modelfleet.protocol.openapi import document

DIGEST = "sha256:" + "b" * 64


def body(**health: Any) -> dict[str, Any]:
    sample = {"model": "m", "version": "1", "window": "60s", "requests": 2, "errors": 0}
    return {"agentVersion": "1", "models": [], "health": [sample | health]}


def refused(doc: object) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_report(doc)
    return info.value


def test_python_names_are_not_wire_names() -> None:
    # The models accept snake_case names in Python; on the wire only the camelCase ones count.
    err = refused({"agent_version": "1", "models": []})
    assert (err.status, err.code, err.field) == (422, "unknown_field", "agent_version")
    err = refused(body(latency_p95_ms=3.0))
    assert (err.code, err.field) == ("unknown_field", "health[0].latency_p95_ms")


@pytest.mark.parametrize("name", ["latencyP50Ms", "latencyP95Ms", "driftScore", "windowEnd"])
def test_an_optional_field_sent_as_null_is_refused_naming_it(name: str) -> None:
    err = refused(body(**{name: None}))
    assert (err.code, err.field) == ("invalid_field", f"health[0].{name}")


def test_a_whole_float_count_is_an_integer() -> None:
    assert parse_report(body(requests=5.0)).health[0].requests == 5


def test_a_validated_health_sample_is_what_status_records() -> None:
    sample = parse_report(body(latencyP95Ms=7.5, windowEnd="2026-01-02T03:04:05Z")).health[0]
    assert sample.to_status() == {
        "model": "m", "version": "1", "window": "60s", "requests": 2, "errors": 0,
        "latencyP95Ms": 7.5,
    }  # fmt: skip


def test_the_field_lists_are_the_models_wire_names() -> None:
    assert MODEL_FIELDS == ("model", "version", "digest", "slot", "state", "message")
    assert set(HEALTH_FIELDS) >= {"windowEnd", "latencyP50Ms", "latencyP95Ms", "driftScore"}


def test_the_openapi_schemas_are_generated_from_the_models() -> None:
    schemas = document()["components"]["schemas"]
    for model, name in ((Report, "Report"), (ModelReport, "ModelReport")):
        wire = {f.alias or n for n, f in model.model_fields.items()}
        assert set(schemas[name]["properties"]) == wire
    assert tuple(schemas["HealthSample"]["properties"]) == HEALTH_FIELDS
    assert schemas["HealthSample"]["additionalProperties"] is False
    assert schemas["HealthSample"]["properties"]["latencyP95Ms"]["type"] == "number"  # not null


def test_python_construction_leaves_optional_figures_out() -> None:
    sample = HealthSample(model="m", version="1", window="60s", requests=1, errors=0)
    assert "latencyP50Ms" not in sample.to_json()
