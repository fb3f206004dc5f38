"""The shared log setup: JSON lines with correlation fields, nothing else leaves."""

from __future__ import annotations

import io
import json
import logging

import pytest

from modelfleet.logs import JsonFormatter, TextFormatter, configure, log_fields, scrub

PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"


def _line(record: logging.LogRecord, **kw: object) -> dict[str, object]:
    return json.loads(JsonFormatter(**kw).format(record))  # type: ignore[arg-type]


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("modelfleet.test", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_a_json_line_carries_the_context_fields_of_the_block() -> None:
    with log_fields(namespace="retail", release="detector", version="2.0.0", commit="abc"):
        doc = _line(_record("phase %s", "Progressing"), component="operator")
    assert doc["message"] == "phase Progressing"
    assert (doc["component"], doc["level"], doc["logger"]) == (
        "operator",
        "info",
        "modelfleet.test",
    )
    assert {k: doc[k] for k in ("namespace", "release", "version", "commit")} == {
        "namespace": "retail",
        "release": "detector",
        "version": "2.0.0",
        "commit": "abc",
    }
    assert str(doc["time"]).endswith("Z")


def test_the_block_ends_and_extras_win_over_static_fields() -> None:
    with log_fields(release="detector"):
        pass
    doc = _line(_record("x", gateway="gw-2"), fields={"gateway": "gw-1"})
    assert doc["gateway"] == "gw-2" and "release" not in doc


def test_unknown_extras_never_reach_a_line() -> None:
    doc = _line(_record("report", body='{"models": []}', certificate=PEM, gateway="gw-1"))
    assert "body" not in doc and "certificate" not in doc and doc["gateway"] == "gw-1"


@pytest.mark.parametrize(
    "text",
    [PEM, "Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.payload.sig", "url?token=s3cr3t&x=1"],
)
def test_messages_are_scrubbed_of_keys_and_tokens(text: str) -> None:
    out = scrub(f"before {text} after")
    assert "[redacted]" in out and "MIIEvQ" not in out and "eyJhbGci" not in out
    assert "s3cr3t" not in out and out.startswith("before ")
    assert "MIIEvQ" not in json.dumps(_line(_record("%s", text)))


def test_kopf_object_records_become_namespace_and_release() -> None:
    ref = {"kind": "ModelRelease", "name": "detector", "namespace": "retail"}
    doc = _line(_record("handler failed", k8s_ref=ref))
    assert (doc["namespace"], doc["release"]) == ("retail", "detector")
    text = TextFormatter().format(_record("handler failed", k8s_ref=ref))
    assert "[retail/detector] handler failed" in text


def test_configure_replaces_the_root_handlers() -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure("json", component="agent", fields={"gateway": "gw-9"}, stream=stream,
                  level=logging.INFO)  # fmt: skip
        logging.getLogger("modelfleet.x").info("hello %s", "there")
    finally:
        root.handlers[:], root.level = saved, level
    doc = json.loads(stream.getvalue())
    assert (doc["message"], doc["gateway"], doc["component"]) == ("hello there", "gw-9", "agent")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of text, json"):
        configure("yaml")
