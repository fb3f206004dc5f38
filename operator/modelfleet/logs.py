"""Logging for every modelfleet process: one setup, text or JSON lines, correlation fields.

``configure(fmt, component=...)`` installs one stderr handler on the root logger. ``text`` is the
default for people at a terminal; ``json`` (what the shipped manifests use) writes one object per
line::

    {"time": "2026-11-30T08:40:12.345Z", "level": "info", "logger": "modelfleet.controller...",
     "component": "operator", "message": "...", "namespace": "retail", "release": "detector",
     "version": "2.1.0", "commit": "3f2a...", "gateway": "gw-0001", ...}

Correlation fields (:data:`FIELDS`) come from three places, later ones winning: the fields given to
``configure`` (e.g. the agent's ``gateway``), :func:`log_fields` (a context manager that tags every
record logged inside it, across ``await``), and ``extra=`` of the call itself. kopf's per-object
records (``k8s_ref``) give ``namespace`` and ``release``/``object``. Nothing else leaves: extras
outside :data:`FIELDS` are dropped (so a request body, a header or a certificate passed as an extra
never reaches a log line), and messages are scrubbed of PEM blocks and bearer tokens.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

FORMATS = ("text", "json")

#: Correlation fields a JSON line may carry besides time, level, logger, component and message.
FIELDS: tuple[str, ...] = (
    "namespace",
    "release",
    "model",
    "version",
    "gateway",
    "commit",
    "phase",
    "step",
    "route",
    "method",
    "status",
    "durationMs",
    "reasons",
    "object",
)

_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "modelfleet_log_fields", default=MappingProxyType({})
)

_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(-----END [A-Z0-9 ]+-----|$)", re.DOTALL)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_SECRET_KV = re.compile(r"(?i)\b(password|passwd|token|secret|api[_-]?key)=([^\s&,;]+)")
REDACTED = "[redacted]"


def scrub(text: str) -> str:
    """``text`` without PEM blocks (keys, certificates), bearer/basic credentials or
    ``password=``/``token=`` values."""
    text = _PEM.sub(REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _SECRET_KV.sub(lambda m: f"{m.group(1)}={REDACTED}", text)


@contextlib.contextmanager
def log_fields(**fields: Any) -> Iterator[None]:
    """Tag every record logged inside the block (this task and the tasks it starts) with
    ``fields`` (names from :data:`FIELDS`; ``None`` values are left out)."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def _fields_of(record: logging.LogRecord, static: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = dict(static)
    ref = getattr(record, "k8s_ref", None)
    if isinstance(ref, Mapping):
        if ref.get("namespace"):
            out["namespace"] = ref["namespace"]
        if ref.get("kind") == "ModelRelease":
            out["release"] = ref.get("name")
        elif ref.get("name"):
            out["object"] = f"{ref.get('kind')}/{ref.get('name')}"
    out.update(_context.get())
    for key in FIELDS:
        value = record.__dict__.get(key)
        if value is not None:
            out[key] = value
    return {k: v for k, v in out.items() if k in FIELDS and v is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for the shape)."""

    def __init__(self, component: str = "", fields: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.component = component
        self.fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        doc: dict[str, Any] = {
            "time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if self.component:
            doc["component"] = self.component
        doc["message"] = scrub(record.getMessage())
        doc.update(_fields_of(record, self.fields))
        if record.exc_info:
            doc["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(doc, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger: [namespace/name] message``, scrubbed like the JSON form."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, Mapping) and ref.get("name"):
            prefix = f"[{ref.get('namespace')}/{ref['name']}]" if ref.get("namespace") else ""
            record = logging.makeLogRecord({**record.__dict__, "msg": f"{prefix} {record.msg}"})
        return scrub(super().format(record))


def formatter(
    fmt: str, component: str = "", fields: Mapping[str, Any] | None = None
) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    return JsonFormatter(component, fields) if fmt == "json" else TextFormatter()


def configure(
    fmt: str = "text",
    *,
    component: str = "",
    level: int | None = None,
    fields: Mapping[str, Any] | None = None,
    stream: TextIO | None = None,
) -> None:
    """Replace the root logger's handlers with one ``stream`` (stderr) handler in ``fmt``;
    ``level`` (default: keep the root's level)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt, component, fields))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    if level is not None:
        root.setLevel(level)
