"""Wire types of the edge protocol (DESIGN §4) as the agent sees them, with strict parsing.

``GET /v1/desired`` returns a :class:`DesiredState`; ``POST /v1/report`` takes a :class:`Report`.
Parsing is strict about what the agent relies on (names, digests, URIs) and tolerant of extra
fields, so a newer fleet API can add fields without breaking older agents.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelfleet.api.edge import DIGEST_RE, MAX_DRIFT, MODEL_RE, VERSION_RE, format_window, matches
from modelfleet.api.edge import MAX_MS as MAX_LATENCY_MS
from modelfleet.errors import ModelfleetError

__all__ = ["DIGEST_RE", "MAX_DRIFT", "MAX_LATENCY_MS", "MAX_MESSAGE", "format_window"]

MAX_MESSAGE = 1024  # what the agent sends (the fleet API takes up to api.edge.MAX_MESSAGE)


class ProtocolError(ModelfleetError):
    """The fleet API sent something the agent cannot use; nothing is changed on the device."""


class ModelState(enum.StrEnum):
    """Where one model stands on one gateway (EdgeGateway ``status.models[].state``)."""

    IDLE = "Idle"
    """Nothing to do: no desired version, nothing installed."""
    DOWNLOADING = "Downloading"
    """Fetching the artifact into the inactive slot (resumable)."""
    DOWNLOADED = "Downloaded"
    """All bytes are on disk, not yet verified."""
    VERIFYING = "Verifying"
    """Checking digest, signature and provenance against the agent's own TrustPolicy."""
    ACTIVATING = "Activating"
    """The verified slot is active; the health check is running."""
    ACTIVE = "Active"
    """The desired version is active and passed its health check."""
    FAILED = "Failed"
    """The desired version could not be installed (download or verification); the previous
    model, if any, is still active."""
    ROLLED_BACK = "RolledBack"
    """The desired version was activated, failed its health check, and the agent switched back."""


@dataclass(frozen=True)
class DesiredModel:
    """One model the fleet API wants on this gateway."""

    model: str
    version: str
    digest: str
    artifact_uri: str
    signature_uri: str | None = None
    attestation_uris: tuple[str, ...] = ()
    release: str = ""
    step: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """What identifies the bytes to install: digest plus signature location."""
        return (self.digest, self.signature_uri or "")


@dataclass(frozen=True)
class DesiredState:
    """The answer to ``GET /v1/desired``; ``etag`` comes from the response header."""

    gateway: str
    models: tuple[DesiredModel, ...]
    poll_after_seconds: float | None = None
    etag: str | None = None


@dataclass(frozen=True)
class NotModified:
    """``GET /v1/desired`` answered 304: keep going; the server may still say when to poll."""

    poll_after_seconds: float | None = None


@dataclass(frozen=True)
class ModelReport:
    """One entry of ``report.models``."""

    model: str
    version: str
    digest: str
    slot: str
    state: ModelState
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "digest": self.digest,
            "slot": self.slot,
            "state": self.state.value,
            "message": self.message[:MAX_MESSAGE],
        }


@dataclass(frozen=True)
class HealthWindow:
    """Aggregates of one model version over one window: the only telemetry that leaves."""

    model: str
    version: str
    window_seconds: float
    window_end: str
    requests: int
    errors: int
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    drift_score: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "version": self.version,
            "window": format_window(self.window_seconds),
            "windowEnd": self.window_end,
            "requests": self.requests,
            "errors": self.errors,
        }
        if self.latency_p50_ms is not None:
            out["latencyP50Ms"] = _clamp(self.latency_p50_ms, MAX_LATENCY_MS, 3)
        if self.latency_p95_ms is not None:
            out["latencyP95Ms"] = _clamp(self.latency_p95_ms, MAX_LATENCY_MS, 3)
        if self.drift_score is not None:
            out["driftScore"] = _clamp(self.drift_score, MAX_DRIFT, 6)
        return out


def _clamp(value: float, maximum: float, digits: int) -> float:
    return round(min(max(value, 0.0), maximum), digits)


@dataclass(frozen=True)
class Report:
    """The body of ``POST /v1/report``: every model's state plus health windows not yet sent."""

    agent_version: str
    models: tuple[ModelReport, ...]
    health: tuple[HealthWindow, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "agentVersion": self.agent_version,
            "models": [m.to_json() for m in self.models],
            "health": [h.to_json() for h in self.health],
        }


def parse_desired(body: object, etag: str | None = None) -> DesiredState:
    """Parse a ``GET /v1/desired`` body; raises :class:`ProtocolError` naming the bad field."""
    if not isinstance(body, Mapping):
        raise ProtocolError(f"desired state: expected a JSON object, got {type(body).__name__}")
    gateway = body.get("gateway")
    if not isinstance(gateway, str) or not gateway:
        raise ProtocolError("desired state: 'gateway' must be a non-empty string")
    raw_models = body.get("models", [])
    if not isinstance(raw_models, list):
        raise ProtocolError("desired state: 'models' must be a list")
    models = tuple(_parse_model(i, m) for i, m in enumerate(raw_models))
    names = [m.model for m in models]
    if len(set(names)) != len(names):
        raise ProtocolError(f"desired state: a model is listed twice in {names}")
    poll = body.get("pollAfterSeconds")
    if poll is not None and (
        isinstance(poll, bool) or not isinstance(poll, int | float) or poll < 0
    ):
        raise ProtocolError("desired state: 'pollAfterSeconds' must be a non-negative number")
    return DesiredState(
        gateway=gateway,
        models=models,
        poll_after_seconds=float(poll) if poll is not None else None,
        etag=etag,
    )


def _parse_model(index: int, raw: object) -> DesiredModel:
    where = f"desired state: models[{index}]"
    if not isinstance(raw, Mapping):
        raise ProtocolError(f"{where}: expected an object")
    model = _str(raw, "model", where)
    if not matches(MODEL_RE, model):
        raise ProtocolError(f"{where}.model: {model!r} is not a valid model name")
    digest = _str(raw, "digest", where)
    if not matches(DIGEST_RE, digest):
        raise ProtocolError(f"{where}.digest: {digest!r} is not sha256:<64 hex>")
    artifact = raw.get("artifact")
    if not isinstance(artifact, Mapping):
        raise ProtocolError(f"{where}.artifact: expected an object with 'uri'")
    signature = raw.get("signature")
    sig_uri: str | None = None
    if signature is not None:
        if not isinstance(signature, Mapping):
            raise ProtocolError(f"{where}.signature: expected an object with 'uri' or null")
        sig_uri = _str(signature, "uri", f"{where}.signature")
    atts = raw.get("attestations") or []
    if not isinstance(atts, list) or not all(isinstance(a, Mapping) for a in atts):
        raise ProtocolError(f"{where}.attestations: expected a list of objects with 'uri'")
    step = raw.get("step")
    release = raw.get("release")
    version = _str(raw, "version", where)
    if not matches(VERSION_RE, version):
        raise ProtocolError(f"{where}.version: {version!r} is not a valid version")
    return DesiredModel(
        model=model,
        version=version,
        digest=digest,
        artifact_uri=_str(artifact, "uri", f"{where}.artifact"),
        signature_uri=sig_uri,
        attestation_uris=tuple(_str(a, "uri", f"{where}.attestations[]") for a in atts),
        release=release if isinstance(release, str) else "",
        step=str(step) if isinstance(step, str | int) and not isinstance(step, bool) else "",
    )


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{where}.{key}: must be a non-empty string")
    return value
