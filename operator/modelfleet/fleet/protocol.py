"""The edge protocol's wire types and their strict validation.

Owns what a gateway may send (``POST /v1/report``, the query of ``GET /v1/desired``) and the
error shape every 4xx/5xx uses: ``{"error": {"code", "message", "field"?}}``. Parsing never
trusts the client: unknown fields, duplicate JSON keys, NaN/Infinity, wrong types, values the
EdgeGateway status schema would refuse and inconsistent figures are all rejected with the exact
field named, before anything is written. The rules here and the JSON schemas in
:mod:`modelfleet.fleet.openapi` describe the same contract (a unit test keeps them in step).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from modelfleet.api.edge import (
    AGENT_VERSION_RE,
    DIGEST_RE,
    GATEWAY_RE,
    HEALTH_FIELDS,
    MAX_AGENT_VERSION,
    MAX_BODY_BYTES,
    MAX_COUNT,
    MAX_DRIFT,
    MAX_HEALTH,
    MAX_MESSAGE,
    MAX_MODELS,
    MAX_MS,
    MAX_WINDOW,
    MODEL_FIELDS,
    MODEL_RE,
    SLOTS,
    STATES,
    TIME_RE,
    VERSION_RE,
    WINDOW_RE,
    matches,
)
from modelfleet.errors import ModelfleetError

__all__ = [
    "AGENT_VERSION_RE",
    "DIGEST_RE",
    "GATEWAY_RE",
    "MAX_AGENT_VERSION",
    "MAX_BODY_BYTES",
    "MAX_COUNT",
    "MAX_DRIFT",
    "MAX_HEALTH",
    "MAX_MESSAGE",
    "MAX_MODELS",
    "MAX_MS",
    "MAX_WAIT_SECONDS",
    "MODEL_RE",
    "SLOTS",
    "STATES",
    "TIME_RE",
    "VERSION_RE",
    "WINDOW_RE",
    "DesiredQuery",
    "HealthSample",
    "ModelReport",
    "ProtocolError",
    "Report",
    "decode_json",
    "parse_desired_query",
    "parse_report",
]

MAX_WAIT_SECONDS: Final = 60


class ProtocolError(ModelfleetError):
    """A request the fleet API refuses: HTTP ``status``, a stable ``code`` and the ``field``."""

    def __init__(
        self, status: int, code: str, message: str, field: str | None = None, **headers: str
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = {k.replace("_", "-"): v for k, v in headers.items()}

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            err["field"] = self.field
        return {"error": err}


@dataclass(frozen=True)
class ModelReport:
    """What a gateway says about one model: which version is where, and in which state."""

    model: str
    state: str
    version: str = ""
    digest: str = ""
    slot: str = ""
    message: str = ""


@dataclass(frozen=True)
class HealthSample:
    """Aggregated inference health of one model version over one window."""

    model: str
    version: str
    window: str
    requests: int
    errors: int
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    drift_score: float | None = None
    window_end: str | None = None  # as the agent said; status gets the server's receipt time

    def to_status(self) -> dict[str, Any]:
        """The EdgeGateway ``status.health[]`` item (without ``windowEnd``)."""
        out: dict[str, Any] = {
            "model": self.model,
            "version": self.version,
            "window": self.window,
            "requests": self.requests,
            "errors": self.errors,
        }
        if self.latency_p50_ms is not None:
            out["latencyP50Ms"] = self.latency_p50_ms
        if self.latency_p95_ms is not None:
            out["latencyP95Ms"] = self.latency_p95_ms
        if self.drift_score is not None:
            out["driftScore"] = self.drift_score
        return out


@dataclass(frozen=True)
class Report:
    """A validated ``POST /v1/report`` body."""

    agent_version: str
    models: tuple[ModelReport, ...]
    health: tuple[HealthSample, ...] = ()
    gateway: str | None = None


@dataclass(frozen=True)
class DesiredQuery:
    """The validated query of ``GET /v1/desired``."""

    wait: int = 0
    gateway: str | None = None


_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def safe_name(key: str) -> str:
    """A client-chosen name fit to repeat in an error (else a placeholder): errors echo nothing
    a client could use to inject text into logs or responses."""
    return key if _SAFE_NAME.fullmatch(key) else "(unprintable name)"


def _invalid(field: str, message: str) -> NoReturn:
    raise ProtocolError(422, "invalid_field", f"{field}: {message}", field)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            name = safe_name(key)
            raise ProtocolError(400, "invalid_json", f"duplicate key {name} in a JSON object", name)
        out[key] = value
    return out


def _no_constants(name: str) -> NoReturn:
    raise ProtocolError(400, "invalid_json", f"{name} is not valid JSON")


def decode_json(raw: bytes) -> object:
    """Strict JSON: UTF-8, no duplicate keys, no NaN/Infinity, bounded nesting."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(400, "invalid_json", f"the body is not UTF-8: {exc.reason}") from exc
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            400, "invalid_json", f"the body is not valid JSON: {exc.msg} at position {exc.pos}"
        ) from exc
    except RecursionError as exc:
        raise ProtocolError(400, "invalid_json", "the body nests too deeply") from exc


class _Obj:
    """Typed, path-aware access to one JSON object of a request body."""

    def __init__(self, value: object, path: str, allowed: tuple[str, ...]) -> None:
        if not isinstance(value, Mapping):
            _invalid(path or "(body)", f"must be an object, got {_type_name(value)}")
        self.doc: Mapping[str, Any] = value
        self.path = path
        for key in value:
            if key not in allowed:
                field = self.at(safe_name(key))
                raise ProtocolError(
                    422,
                    "unknown_field",
                    f"{field}: unknown field; allowed: {', '.join(allowed)}",
                    field,
                )

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def string(
        self, key: str, pattern: re.Pattern[str] | None, *, required: bool, max_len: int = 253
    ) -> str | None:
        if key not in self.doc:
            if required:
                _invalid(self.at(key), "required")
            return None
        value = self.doc[key]
        if not isinstance(value, str):
            _invalid(self.at(key), f"must be a string, got {_type_name(value)}")
        if len(value) > max_len:
            _invalid(self.at(key), f"must be at most {max_len} characters")
        if pattern is not None and not matches(pattern, value):
            _invalid(self.at(key), f"does not match {pattern.pattern}")
        return value

    def enum(self, key: str, allowed: tuple[str, ...], *, required: bool) -> str | None:
        value = self.string(key, None, required=required)
        if value is not None and value not in allowed:
            shown = ", ".join(repr(a) for a in allowed)
            _invalid(self.at(key), f"must be one of {shown}")
        return value

    def integer(self, key: str) -> int:
        if key not in self.doc:
            _invalid(self.at(key), "required")
        value = self.doc[key]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            _invalid(self.at(key), f"must be an integer, got {_type_name(value)}")
        if not 0 <= value <= MAX_COUNT:
            _invalid(self.at(key), f"must be between 0 and {MAX_COUNT}")
        return value

    def number(self, key: str, maximum: float) -> float | None:
        if key not in self.doc:
            return None
        value = self.doc[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            _invalid(self.at(key), f"must be a number, got {_type_name(value)}")
        number = float(value)
        if not math.isfinite(number) or not 0 <= number <= maximum:
            _invalid(self.at(key), f"must be between 0 and {maximum:g}")
        return number

    def array(self, key: str, max_items: int, *, required: bool) -> list[Any]:
        if key not in self.doc:
            if required:
                _invalid(self.at(key), "required")
            return []
        value = self.doc[key]
        if not isinstance(value, list):
            _invalid(self.at(key), f"must be an array, got {_type_name(value)}")
        if len(value) > max_items:
            _invalid(self.at(key), f"must have at most {max_items} items")
        return value


def _model_report(value: object, path: str) -> ModelReport:
    o = _Obj(value, path, MODEL_FIELDS)
    model = o.string("model", MODEL_RE, required=True, max_len=63) or ""
    state = o.enum("state", STATES, required=True) or ""
    idle = state == "Idle"
    version = o.string("version", None, required=not idle, max_len=128)
    digest = o.string("digest", None, required=not idle, max_len=71)
    if version or not idle:
        version = o.string("version", VERSION_RE, required=True, max_len=128)
    if digest or not idle:
        digest = o.string("digest", DIGEST_RE, required=True, max_len=71)
    slot = o.enum("slot", SLOTS, required=False)
    message = o.string("message", None, required=False, max_len=MAX_MESSAGE)
    return ModelReport(
        model=model,
        state=state,
        version=version or "",
        digest=digest or "",
        slot=slot or "",
        message=message or "",
    )


def _health_sample(value: object, path: str) -> HealthSample:
    o = _Obj(value, path, HEALTH_FIELDS)
    sample = HealthSample(
        model=o.string("model", MODEL_RE, required=True, max_len=63) or "",
        version=o.string("version", VERSION_RE, required=True, max_len=128) or "",
        window=o.string("window", WINDOW_RE, required=True, max_len=MAX_WINDOW) or "",
        requests=o.integer("requests"),
        errors=o.integer("errors"),
        latency_p50_ms=o.number("latencyP50Ms", MAX_MS),
        latency_p95_ms=o.number("latencyP95Ms", MAX_MS),
        drift_score=o.number("driftScore", MAX_DRIFT),
        window_end=o.string("windowEnd", TIME_RE, required=False, max_len=40),
    )
    if sample.window_end is not None:
        try:
            dt.datetime.fromisoformat(sample.window_end.replace("Z", "+00:00"))
        except ValueError:
            _invalid(o.at("windowEnd"), "is not a valid date-time")
    if sample.errors > sample.requests:
        _invalid(o.at("errors"), f"{sample.errors} errors exceed {sample.requests} requests")
    p50, p95 = sample.latency_p50_ms, sample.latency_p95_ms
    if p50 is not None and p95 is not None and p50 > p95:
        _invalid(o.at("latencyP50Ms"), f"p50 {p50:g} ms is above p95 {p95:g} ms")
    return sample


def parse_report(doc: object) -> Report:
    """Validate a decoded report body; raises :class:`ProtocolError` (4xx) naming the field."""
    o = _Obj(doc, "", ("gateway", "agentVersion", "models", "health"))
    gateway = o.string("gateway", GATEWAY_RE, required=False)
    agent_version = (
        o.string("agentVersion", AGENT_VERSION_RE, required=True, max_len=MAX_AGENT_VERSION) or ""
    )
    models = tuple(
        _model_report(item, f"models[{i}]")
        for i, item in enumerate(o.array("models", MAX_MODELS, required=True))
    )
    seen: set[str] = set()
    for i, m in enumerate(models):
        if m.model in seen:
            _invalid(f"models[{i}].model", f"model {m.model} is listed twice")
        seen.add(m.model)
    health = tuple(
        _health_sample(item, f"health[{i}]")
        for i, item in enumerate(o.array("health", MAX_HEALTH, required=False))
    )
    return Report(agent_version=agent_version, models=models, health=health, gateway=gateway)


def parse_desired_query(query: Mapping[str, str], keys: list[str]) -> DesiredQuery:
    """Validate the query of ``GET /v1/desired`` (``keys`` lists every key, repeats included)."""
    for key in keys:
        if key not in ("wait", "gateway"):
            raise ProtocolError(
                400,
                "unknown_parameter",
                f"unknown query parameter {safe_name(key)}; allowed: wait, gateway",
                safe_name(key),
            )
        if keys.count(key) > 1:
            raise ProtocolError(400, "invalid_parameter", f"{key} given more than once", key)
    wait = 0
    raw = query.get("wait")
    if raw is not None:
        if not raw.isascii() or not raw.isdigit() or len(raw) > 3:
            raise ProtocolError(
                400,
                "invalid_parameter",
                f"wait must be whole seconds from 0 to {MAX_WAIT_SECONDS}",
                "wait",
            )
        wait = int(raw)
        if wait > MAX_WAIT_SECONDS:
            raise ProtocolError(
                400, "invalid_parameter", f"wait must be at most {MAX_WAIT_SECONDS}", "wait"
            )
    gateway = query.get("gateway")
    if gateway is not None and not matches(GATEWAY_RE, gateway):
        raise ProtocolError(400, "invalid_parameter", "gateway is not a valid name", "gateway")
    return DesiredQuery(wait=wait, gateway=gateway)
