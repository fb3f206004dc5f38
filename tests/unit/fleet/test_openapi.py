"""The OpenAPI document describes what the validator accepts."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
import schemathesis

from modelfleet.protocol import ProtocolError, parse_report
from modelfleet.protocol.openapi import document, document_bytes

from .test_protocol import BAD, report

#: Rules JSON Schema cannot express; the validator checks them, the descriptions state them.
CROSS_FIELD = {"model listed twice", "errors above requests", "p50 above p95",
               "windowEnd not a time"}  # fmt: skip
#: JSON Schema patterns are ECMA-262, where ``$`` is the end of the value; the Python jsonschema
#: library applies them with ``re.search``, where ``$`` also matches before a final newline. The
#: schema rejects these in a conforming validator; the fleet API applies them with fullmatch.
CROSS_FIELD |= {b[0] for b in BAD if b[0].endswith("with a newline")}


def validator(name: str) -> jsonschema.Draft4Validator:
    doc = document()
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return jsonschema.Draft4Validator(schema)


def test_the_document_loads_in_schemathesis() -> None:
    schema = schemathesis.openapi.from_dict(json.loads(document_bytes()))
    operations = {op.ok().label for op in schema.get_all_operations()}
    assert operations == {"GET /v1/desired", "POST /v1/report", "GET /openapi.json"}


def test_a_valid_report_is_valid_in_both() -> None:
    validator("Report").validate(report())
    parse_report(report())


def test_an_idle_model_without_version_is_valid_in_both() -> None:
    doc = report(models=[{"model": "m", "state": "Idle", "version": "", "digest": ""}])
    validator("Report").validate(doc)
    parse_report(doc)


@pytest.mark.parametrize(
    ("what", "mutate"),
    [(b[0], b[1]) for b in BAD if b[0] not in CROSS_FIELD],
    ids=[b[0] for b in BAD if b[0] not in CROSS_FIELD],
)
def test_what_the_validator_rejects_the_schema_rejects(what: str, mutate: Any) -> None:
    doc = report()
    mutate(doc)
    with pytest.raises(ProtocolError):
        parse_report(copy.deepcopy(doc))
    assert not validator("Report").is_valid(doc), what


def test_every_operation_documents_its_errors_as_json() -> None:
    for path, ops in document()["paths"].items():
        for op in ops.values():
            for status, response in op["responses"].items():
                if status >= "400":
                    content = response["content"]["application/json"]["schema"]
                    assert content == {"$ref": "#/components/schemas/Error"}, (path, status)
