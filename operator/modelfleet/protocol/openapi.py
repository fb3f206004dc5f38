"""The OpenAPI 3.1 document of the edge protocol, served at ``/openapi.json``.

Generated: the schemas are those of the messages in :mod:`modelfleet.protocol.messages` (the
same models the agent sends and the fleet API validates with, so they cannot drift apart); this
module adds the operations and every status each can return. Rules JSON Schema cannot state
(each model listed once, ``errors <= requests``, ``latencyP50Ms <= latencyP95Ms``) are in the
models' descriptions.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from modelfleet import __version__
from modelfleet.protocol import rules
from modelfleet.protocol.messages import DesiredState, ErrorBody, Report, ReportResult

_ERROR_CODES = (
    "bad_request, invalid_json, invalid_field, unknown_field, invalid_parameter, "
    "unknown_parameter, unsupported_media_type, body_too_large, request_timeout, "
    "unknown_certificate, duplicate_fingerprint, certificate_expired, gateway_mismatch, "
    "rate_limited, not_found, method_not_allowed, rejected, upstream_unavailable, not_ready"
)
_REF = "#/components/schemas/{model}"
#: Documented messages: (model, mode) -- reports are validated, desired states serialized.
_MESSAGES: list[tuple[type[BaseModel], Any]] = [
    (ErrorBody, "serialization"),
    (DesiredState, "serialization"),
    (Report, "validation"),
    (ReportResult, "serialization"),
]

_STRICT = ("Report", "ModelReport", "HealthSample")


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema(_MESSAGES, ref_template=_REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    code = schemas["ErrorDetail"]["properties"]["code"]
    code["description"] = f"Stable code: {_ERROR_CODES}."
    schemas["Error"] = schemas.pop("ErrorBody")
    for name in _STRICT:  # optional request fields are left out, never null (see messages)
        for prop, schema in schemas[name]["properties"].items():
            variants = schema.get("anyOf", [])
            if {"type": "null"} in variants and len(variants) == 2:
                (kept,) = (v for v in variants if v != {"type": "null"})
                schemas[name]["properties"][prop] = {
                    **{k: v for k, v in schema.items() if k not in ("anyOf", "default")},
                    **kept,
                }
    return schemas


def _err(description: str, **headers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        out["headers"] = headers
    return out


_RETRY = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
_POLL = {
    rules.POLL_AFTER_HEADER: {
        "schema": {"type": "integer"},
        "description": "Seconds until the next poll (same as pollAfterSeconds).",
    }
}
_COMMON = {
    "400": _err("The request is not valid HTTP/1.1 (nothing of it is repeated)."),
    "403": _err(
        "The certificate is not enrolled or was revoked, more than one EdgeGateway claims it, "
        "or the request names another gateway."
    ),
    "408": _err("The request headers (or a report's body) did not arrive in time."),
    "429": _err("Too many requests from this gateway.", **_RETRY),
    "503": _err("The API server is unreachable or this replica is not synced yet.", **_RETRY),
}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "modelfleet fleet API",
            "version": __version__,
            "description": (
                "The edge protocol between gateway agents and the fleet. Every request needs a "
                "client certificate issued by the fleet CA whose SHA-256 fingerprint equals the "
                "EdgeGateway's spec.certificateFingerprint (mutual TLS); the gateway is whoever "
                "the certificate says. Errors are JSON: {error: {code, message, field?}}."
            ),
        },
        "paths": {
            "/v1/desired": {
                "get": {
                    "operationId": "getDesired",
                    "summary": "What this gateway should run",
                    "parameters": [
                        {
                            "name": "wait",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "integer",
                                "minimum": 0,
                                "maximum": rules.MAX_WAIT_SECONDS,
                            },
                            "description": "Long poll: with If-None-Match, hold the request up "
                            "to this many seconds until the desired state changes.",
                        },
                        {
                            "name": "gateway",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "pattern": rules.GATEWAY_RE.pattern},
                            "description": "Optional; must be the caller's own name.",
                        },
                        {
                            "name": "If-None-Match",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                            "description": "ETag of the last answer: 304 when nothing changed.",
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The desired state.",
                            "headers": {
                                "ETag": {"schema": {"type": "string"}, "required": True},
                                **_POLL,
                            },
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/DesiredState"}
                                }
                            },
                        },
                        "304": {"description": "Unchanged since If-None-Match.", "headers": _POLL},
                        **_COMMON,
                        "400": _err("A bad or repeated query parameter, or invalid HTTP."),
                    },
                }
            },
            "/v1/report": {
                "post": {
                    "operationId": "postReport",
                    "summary": "Report model states and health",
                    "description": "Written to EdgeGateway status, coalesced: state changes at "
                    "once, health at most once per health interval, heartbeats rarely unless the "
                    "gateway is in an active cohort.",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Report"}}
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Accepted (and written, unless coalesced).",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/ReportResult"}
                                }
                            },
                        },
                        **_COMMON,
                        "400": _err("The body is not valid JSON, or the request not HTTP/1.1."),
                        "413": _err(f"The body is larger than {rules.MAX_BODY_BYTES} bytes."),
                        "415": _err("The body is not application/json."),
                        "422": _err("The body breaks a rule; error.field names the field."),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenAPI",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3 document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "400": _COMMON["400"],
                        "408": _COMMON["408"],
                        "429": _COMMON["429"],
                    },
                }
            },
        },
        "components": {"schemas": _schemas()},
    }


def document_bytes() -> bytes:
    return json.dumps(document(), indent=1, sort_keys=True).encode()
