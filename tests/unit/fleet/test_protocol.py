"""Strict validation of what gateways send: every bad input is a 4xx naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelfleet.protocol import ProtocolError, decode_json, parse_desired_query, parse_report
from modelfleet.protocol.rules import MAX_HEALTH

DIGEST = "sha256:" + "a" * 64


def report(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "agentVersion": "0.1.0",
        "models": [
            {
                "model": "detector",
                "version": "2.1.0",
                "digest": DIGEST,
                "slot": "B",
                "state": "Active",
                "message": "",
            }
        ],
        "health": [
            {
                "model": "detector",
                "version": "2.1.0",
                "window": "60s",
                "requests": 120,
                "errors": 1,
                "latencyP50Ms": 4.0,
                "latencyP95Ms": 12.5,
                "driftScore": 0.02,
            }
        ],
    }
    doc.update(over)
    return doc


def error_of(doc: object) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_report(doc)
    return info.value


def test_a_complete_report_parses_into_typed_values() -> None:
    parsed = parse_report(report())
    assert parsed.agent_version == "0.1.0"
    assert parsed.models[0].state == "Active" and parsed.models[0].slot == "B"
    assert parsed.health[0].requests == 120 and parsed.health[0].latency_p95_ms == 12.5


def test_health_and_message_are_optional() -> None:
    doc = report()
    del doc["health"]
    del doc["models"][0]["message"]
    assert parse_report(doc).health == ()


def test_an_idle_model_needs_no_version_and_may_send_empty_strings() -> None:
    doc = report(models=[{"model": "detector", "state": "Idle", "version": "", "digest": ""}])
    assert parse_report(doc).models[0].version == ""


def test_the_agents_windowend_is_accepted() -> None:
    doc = report()
    doc["health"][0]["windowEnd"] = "2026-01-02T03:04:05Z"
    assert parse_report(doc).health[0].window_end == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize("window", ["60s", "500ms", "1m30s", "250ms", "1h"])
def test_window_durations_are_accepted(window: str) -> None:
    doc = report()
    doc["health"][0]["window"] = window
    assert parse_report(doc).health[0].window == window


def test_several_windows_of_one_version_are_accepted() -> None:
    doc = report()
    doc["health"] = doc["health"] * 3
    assert len(parse_report(doc).health) == 3


BAD: list[tuple[str, Any, str, str]] = [
    # (what, mutation applied to the report, expected code, expected field)
    ("unknown top-level field", lambda d: d.update(extra=1), "unknown_field", "extra"),
    ("missing agentVersion", lambda d: d.pop("agentVersion"), "invalid_field", "agentVersion"),
    ("agentVersion with a space", lambda d: d.update(agentVersion="1 0"), "invalid_field",
     "agentVersion"),
    ("models not a list", lambda d: d.update(models={}), "invalid_field", "models"),
    ("missing models", lambda d: d.pop("models"), "invalid_field", "models"),
    ("model item not an object", lambda d: d.update(models=[1]), "invalid_field", "models[0]"),
    ("unknown model field", lambda d: d["models"][0].update(color="red"), "unknown_field",
     "models[0].color"),
    ("bad state", lambda d: d["models"][0].update(state="Running"), "invalid_field",
     "models[0].state"),
    ("bad slot", lambda d: d["models"][0].update(slot="C"), "invalid_field", "models[0].slot"),
    ("bad digest", lambda d: d["models"][0].update(digest="md5:00"), "invalid_field",
     "models[0].digest"),
    ("active without version", lambda d: d["models"][0].pop("version"), "invalid_field",
     "models[0].version"),
    ("active with empty digest", lambda d: d["models"][0].update(digest=""), "invalid_field",
     "models[0].digest"),
    ("model name not a DNS label", lambda d: d["models"][0].update(model="Det_1"),
     "invalid_field", "models[0].model"),
    ("model listed twice", lambda d: d["models"].append(dict(d["models"][0])), "invalid_field",
     "models[1].model"),
    ("message too long", lambda d: d["models"][0].update(message="x" * 5000), "invalid_field",
     "models[0].message"),
    ("requests negative", lambda d: d["health"][0].update(requests=-1), "invalid_field",
     "health[0].requests"),
    ("requests a boolean", lambda d: d["health"][0].update(requests=True), "invalid_field",
     "health[0].requests"),
    ("requests fractional", lambda d: d["health"][0].update(requests=1.5), "invalid_field",
     "health[0].requests"),
    ("errors above requests", lambda d: d["health"][0].update(errors=500), "invalid_field",
     "health[0].errors"),
    ("p50 above p95", lambda d: d["health"][0].update(latencyP50Ms=99.0), "invalid_field",
     "health[0].latencyP50Ms"),
    ("latency a string", lambda d: d["health"][0].update(latencyP95Ms="12"), "invalid_field",
     "health[0].latencyP95Ms"),
    ("window not a duration", lambda d: d["health"][0].update(window="a minute"),
     "invalid_field", "health[0].window"),
    ("windowEnd not a time", lambda d: d["health"][0].update(windowEnd="2026-13-45T00:00:00Z"),
     "invalid_field", "health[0].windowEnd"),
    ("too many health items", lambda d: d.update(health=d["health"] * (MAX_HEALTH + 1)),
     "invalid_field", "health"),
    ("gateway not a name", lambda d: d.update(gateway="Not A Name"), "invalid_field", "gateway"),
    # The operator reads status.health[].window with the ModelRelease duration grammar (whole
    # units): a fractional window would make the gateway unreadable to the gates (issue 10).
    ("window fractional", lambda d: d["health"][0].update(window="0.5s"), "invalid_field",
     "health[0].window"),
    ("window zero-padded fraction", lambda d: d["health"][0].update(window="1.0m"),
     "invalid_field", "health[0].window"),
    # `$` matches before a final newline: every pattern must match the whole value.
    ("version with a newline", lambda d: d["models"][0].update(version="2.1.0\n"),
     "invalid_field", "models[0].version"),
    ("model with a newline", lambda d: d["models"][0].update(model="detector\n"),
     "invalid_field", "models[0].model"),
    ("digest with a newline", lambda d: d["models"][0].update(digest=DIGEST + "\n"),
     "invalid_field", "models[0].digest"),
    ("health version with a newline", lambda d: d["health"][0].update(version="2.1.0\n"),
     "invalid_field", "health[0].version"),
    ("window with a newline", lambda d: d["health"][0].update(window="60s\n"),
     "invalid_field", "health[0].window"),
    ("windowEnd with a newline",
     lambda d: d["health"][0].update(windowEnd="2026-01-02T03:04:05Z\n"),
     "invalid_field", "health[0].windowEnd"),
    ("agentVersion with a newline", lambda d: d.update(agentVersion="0.1.0\n"),
     "invalid_field", "agentVersion"),
    ("gateway with a newline", lambda d: d.update(gateway="gw-1\n"), "invalid_field",
     "gateway"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "mutate", "code", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_reports_are_rejected_naming_the_field(
    what: str, mutate: Any, code: str, field: str
) -> None:
    doc = report()
    mutate(doc)
    err = error_of(doc)
    assert (err.status, err.code, err.field) == (422, code, field), err.message
    assert err.body()["error"]["field"] == field


def test_a_body_that_is_not_an_object_is_rejected() -> None:
    assert error_of([]).status == 422


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{", "not valid JSON"),
        (b'{"a": 1, "a": 2}', "duplicate key"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": Infinity}', "Infinity"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 100_000, "nests too deeply"),
    ],
)
def test_malformed_json_is_a_400(raw: bytes, fragment: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_json(raw)
    assert info.value.status == 400 and info.value.code == "invalid_json"
    assert fragment in info.value.message


def test_valid_json_decodes() -> None:
    assert decode_json(json.dumps(report()).encode()) == report()


def test_desired_query_accepts_wait_and_gateway() -> None:
    q = parse_desired_query({"wait": "30", "gateway": "gw-1"}, ["wait", "gateway"])
    assert (q.wait, q.gateway) == (30, "gw-1")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"wait": "61"}, "wait"),
        ({"wait": "-1"}, "wait"),
        ({"wait": "1.5"}, "wait"),
        ({"wait": "abc"}, "wait"),
        ({"gateway": "UPPER"}, "gateway"),
        ({"gateway": "gw-1\n"}, "gateway"),
        ({"since": "1"}, "since"),
    ],
)
def test_bad_desired_queries_are_400(query: dict[str, str], field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_desired_query(query, list(query))
    assert info.value.status == 400 and info.value.field == field


def test_a_repeated_query_parameter_is_400() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_desired_query({"wait": "1"}, ["wait", "wait"])
    assert info.value.field == "wait"


def test_a_repeated_gateway_parameter_is_400() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_desired_query({"gateway": "gw-1"}, ["gateway", "gateway"])
    assert (info.value.status, info.value.code, info.value.field) == (
        400, "invalid_parameter", "gateway",
    )  # fmt: skip


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["models"][0].update(state="<script>" + "x" * 50),
        lambda d: d["models"][0].update(version="1.0\r\nSet-Cookie: a=b"),
        lambda d: d.update({"<img src=x>": 1}),
    ],
)
def test_errors_repeat_no_client_value(mutate: Any) -> None:
    doc = report()
    mutate(doc)
    err = error_of(doc)
    text = json.dumps(err.body())
    assert "<" not in text and "Set-Cookie" not in text and "xxxxx" not in text
