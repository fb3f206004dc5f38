"""The OpenAPI 3 document of the edge protocol, served at ``/openapi.json``.

It describes exactly what :mod:`modelfleet.fleet.protocol` accepts (the same limits, patterns
and enums) and every status each operation can return. Rules JSON Schema cannot state (each model
listed once, ``errors <= requests``, ``latencyP50Ms <= latencyP95Ms``) are in the descriptions.
"""

from __future__ import annotations

import json
from typing import Any

from modelfleet import __version__
from modelfleet.fleet import protocol as p

POLL_AFTER_HEADER = "Modelfleet-Poll-After"

_ERROR_CODES = (
    "bad_request, invalid_json, invalid_field, unknown_field, invalid_parameter, "
    "unknown_parameter, unsupported_media_type, body_too_large, request_timeout, "
    "unknown_certificate, duplicate_fingerprint, certificate_expired, gateway_mismatch, "
    "rate_limited, not_found, method_not_allowed, rejected, upstream_unavailable, not_ready"
)

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": f"Stable code: {_ERROR_CODES}."},
                "message": {"type": "string", "description": "What is wrong, for people."},
                "field": {"type": "string", "description": "The offending field or parameter."},
            },
        }
    },
}

_URI = {"type": "object", "required": ["uri"], "properties": {"uri": {"type": "string"}}}

_DESIRED_MODEL = {
    "type": "object",
    "required": [
        "model",
        "version",
        "digest",
        "artifact",
        "signature",
        "attestations",
        "release",
        "step",
    ],
    "properties": {
        "model": {"type": "string"},
        "version": {"type": "string"},
        "digest": {"type": "string", "pattern": p.DIGEST_RE.pattern},
        "artifact": _URI,
        "signature": {**_URI, "nullable": True},
        "attestations": {"type": "array", "items": _URI},
        "release": {"type": "string", "description": "The ModelRelease that decided."},
        "step": {
            "type": "integer",
            "nullable": True,
            "description": "The release's current step index while it rolls out, else null.",
        },
    },
}

_DESIRED = {
    "type": "object",
    "required": ["gateway", "models", "pollAfterSeconds"],
    "properties": {
        "gateway": {"type": "string"},
        "models": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/DesiredModel"},
            "description": "What to run, per model. A model not listed: no instruction, keep "
            "what runs.",
        },
        "pollAfterSeconds": {"type": "integer", "minimum": 1},
    },
}

_MODEL_REPORT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["model", "state"],
    "description": "version and digest are required (non-empty) unless state is Idle.",
    "properties": {
        "model": {"type": "string", "pattern": p.MODEL_RE.pattern, "maxLength": 63},
        "version": {
            "type": "string",
            "pattern": "^(|[A-Za-z0-9][A-Za-z0-9._+-]*)$",
            "maxLength": 128,
        },
        "digest": {"type": "string", "pattern": "^(|sha256:[0-9a-f]{64})$", "maxLength": 71},
        "slot": {"type": "string", "enum": list(p.SLOTS)},
        "state": {"type": "string", "enum": list(p.STATES)},
        "message": {"type": "string", "maxLength": p.MAX_MESSAGE},
    },
    "anyOf": [
        {"properties": {"state": {"type": "string", "enum": ["Idle"]}}},
        {
            "required": ["version", "digest"],
            "properties": {
                "version": {"type": "string", "minLength": 1},
                "digest": {"type": "string", "minLength": 1},
            },
        },
    ],
}

_COUNT = {"type": "integer", "minimum": 0, "maximum": p.MAX_COUNT}
_MS = {"type": "number", "minimum": 0, "maximum": p.MAX_MS}

_HEALTH = {
    "type": "object",
    "additionalProperties": False,
    "required": ["model", "version", "window", "requests", "errors"],
    "description": "errors must not exceed requests; latencyP50Ms must not exceed latencyP95Ms.",
    "properties": {
        "model": {"type": "string", "pattern": p.MODEL_RE.pattern, "maxLength": 63},
        "version": {"type": "string", "pattern": p.VERSION_RE.pattern, "maxLength": 128},
        "window": {
            "type": "string",
            "pattern": p.WINDOW_RE.pattern,
            "maxLength": 32,
            "description": "Aggregation window, e.g. 60s or 5m.",
        },
        "windowEnd": {
            "type": "string",
            "format": "date-time",
            "pattern": p.TIME_RE.pattern,
            "description": "End of the window by the gateway's clock (status records the fleet "
            "API's receipt time instead).",
        },
        "requests": _COUNT,
        "errors": _COUNT,
        "latencyP50Ms": _MS,
        "latencyP95Ms": _MS,
        "driftScore": {"type": "number", "minimum": 0, "maximum": p.MAX_DRIFT},
    },
}

_REPORT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["agentVersion", "models"],
    "description": "Each model at most once in models. health may hold several windows of one "
    "model version (unsent ones, oldest first); the newest is recorded.",
    "properties": {
        "gateway": {
            "type": "string",
            "pattern": p.GATEWAY_RE.pattern,
            "maxLength": 253,
            "description": "Optional; if given it must be the caller's own name.",
        },
        "agentVersion": {
            "type": "string",
            "pattern": p.AGENT_VERSION_RE.pattern,
            "maxLength": p.MAX_AGENT_VERSION,
        },
        "models": {
            "type": "array",
            "maxItems": p.MAX_MODELS,
            "items": {"$ref": "#/components/schemas/ModelReport"},
        },
        "health": {
            "type": "array",
            "maxItems": p.MAX_HEALTH,
            "items": {"$ref": "#/components/schemas/HealthSample"},
        },
    },
}

_REPORT_RESULT = {
    "type": "object",
    "required": ["written", "reasons"],
    "properties": {
        "written": {"type": "boolean", "description": "Whether EdgeGateway status was written."},
        "reasons": {
            "type": "array",
            "items": {"type": "string", "enum": ["models", "agentVersion", "health", "heartbeat"]},
        },
    },
}


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
    POLL_AFTER_HEADER: {
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
    """The OpenAPI 3.0 document."""
    return {
        "openapi": "3.0.3",
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
                                "maximum": p.MAX_WAIT_SECONDS,
                            },
                            "description": "Long poll: with If-None-Match, hold the request up "
                            "to this many seconds until the desired state changes.",
                        },
                        {
                            "name": "gateway",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "pattern": p.GATEWAY_RE.pattern},
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
                        "413": _err(f"The body is larger than {p.MAX_BODY_BYTES} bytes."),
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
        "components": {
            "schemas": {
                "Error": _ERROR,
                "DesiredModel": _DESIRED_MODEL,
                "DesiredState": _DESIRED,
                "ModelReport": _MODEL_REPORT,
                "HealthSample": _HEALTH,
                "Report": _REPORT,
                "ReportResult": _REPORT_RESULT,
            }
        },
    }


def document_bytes() -> bytes:
    return json.dumps(document(), indent=1, sort_keys=True).encode()
