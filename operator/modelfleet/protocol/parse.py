"""What a gateway may send the fleet API, validated: the body of ``POST /v1/report`` and the
query of ``GET /v1/desired``, and the error every 4xx/5xx answer carries.

Parsing never trusts the client: duplicate JSON keys, NaN/Infinity and deep nesting are refused
by :func:`decode_json`; unknown fields, wrong types and values EdgeGateway status would refuse
by the :class:`~modelfleet.protocol.messages.Report` model; the rules JSON Schema cannot state
(each model once, ``errors <= requests``, ``p50 <= p95``, a real date) here. The first problem
becomes one :class:`ProtocolError` naming the exact field, before anything is written. Error
messages never repeat a client's value.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from modelfleet.errors import ModelfleetError
from modelfleet.protocol.messages import WIRE, Report
from modelfleet.protocol.rules import GATEWAY_RE, MAX_WAIT_SECONDS, matches


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
    if isinstance(value, list | tuple):
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


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{safe_name(part)}" if out else safe_name(part)
    return out or "(body)"


def _model_at(loc: Sequence[int | str]) -> type[BaseModel]:
    """The message class whose fields ``loc`` (up to its last part) points into."""
    model: type[BaseModel] = Report
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = next(
            (f for n, f in model.model_fields.items() if part in (n, f.alias)), None
        )  # fmt: skip
        inner = [a for a in get_args(field.annotation) if isinstance(a, type)] if field else []
        nested = [a for a in inner if issubclass(a, BaseModel)]
        if not nested:
            break
        model = nested[0]
    return model


#: Our wording for pydantic's error types (never repeating the client's value): ``{got}`` is the
#: JSON type received, ``{max_length}``/``{pattern}``/``{expected}`` come from the rule broken.
_MESSAGES: dict[str, str] = {
    "missing": "required",
    "model_type": "must be an object, got {got}",
    "dict_type": "must be an object, got {got}",
    "model_attributes_type": "must be an object, got {got}",
    "list_type": "must be an array, got {got}",
    "tuple_type": "must be an array, got {got}",
    "string_type": "must be a string, got {got}",
    "int_type": "must be an integer, got {got}",
    "int_from_float": "must be an integer, got {got}",
    "float_type": "must be a finite number, got {got}",
    "finite_number": "must be a finite number, got {got}",
    "string_too_long": "must be at most {max_length} characters",
    "string_too_short": "must be at least {min_length} characters",
    "too_long": "must have at most {max_length} items",
    "string_pattern_mismatch": "does not match {pattern}",
    "greater_than_equal": "is out of range",
    "less_than_equal": "is out of range",
    "enum": "must be one of {expected}",
    "literal_error": "must be one of {expected}",
    "value_error": "{error}",
}


def _message(err: ErrorDetails) -> str:
    template = _MESSAGES.get(err["type"])
    if template is None:
        return str(err["msg"])
    return template.format(got=_type_name(err.get("input")), **(err.get("ctx") or {}))


def _refuse(exc: ValidationError) -> NoReturn:
    """The first problem pydantic found, as the fleet API's error naming the field; an unknown
    field first (a client speaking another version of the protocol learns that at once)."""
    errors = exc.errors(include_url=False)
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = err["loc"]
    field = _path(loc)
    if err["type"] == "extra_forbidden":
        model = _model_at(loc)
        allowed = ", ".join(f.alias or n for n, f in model.model_fields.items())
        raise ProtocolError(
            422, "unknown_field", f"{field}: unknown field; allowed: {allowed}", field
        )
    _invalid(field, _message(err))


def _check_rules(report: Report) -> None:
    """What a JSON Schema cannot say; each problem names its field."""
    seen: set[str] = set()
    for i, m in enumerate(report.models):
        if m.state != "Idle":
            if not m.version:
                _invalid(f"models[{i}].version", "required unless state is Idle")
            if not m.digest:
                _invalid(f"models[{i}].digest", "required unless state is Idle")
        if m.model in seen:
            _invalid(f"models[{i}].model", f"model {m.model} is listed twice")
        seen.add(m.model)
    for i, h in enumerate(report.health):
        where = f"health[{i}]"
        if h.window_end is not None:
            try:
                dt.datetime.fromisoformat(h.window_end.replace("Z", "+00:00"))
            except ValueError:
                _invalid(f"{where}.windowEnd", "is not a valid date-time")
        if h.errors > h.requests:
            _invalid(f"{where}.errors", f"{h.errors} errors exceed {h.requests} requests")
        p50, p95 = h.latency_p50_ms, h.latency_p95_ms
        if p50 is not None and p95 is not None and p50 > p95:
            _invalid(f"{where}.latencyP50Ms", f"p50 {p50:g} ms is above p95 {p95:g} ms")


def parse_report(doc: object) -> Report:
    """Validate a decoded report body; raises :class:`ProtocolError` (4xx) naming the field."""
    try:
        report = Report.model_validate(doc, by_alias=True, by_name=False, context=WIRE)
    except ValidationError as exc:
        _refuse(exc)
    _check_rules(report)
    return report


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
