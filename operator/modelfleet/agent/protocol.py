"""The edge protocol as the agent sees it: what it was told and what it reports.

The messages themselves are defined once, in :mod:`modelfleet.protocol` (pydantic models shared
with the fleet API); these are the agent's own values, converted at the edge: ``to_message``
builds the protocol message without re-validating the agent's own values (clamping figures into
the protocol's ranges and truncating messages, so a report is never refused for a wild latency;
``tests/unit/fleet/test_edge_contract.py`` shows the fleet API accepts what the agent sends),
and :func:`parse_desired` reads a :class:`~modelfleet.protocol.DesiredState`, tolerant of extra
fields so a newer fleet API can add fields without breaking older agents.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError

from modelfleet import protocol as wire
from modelfleet.errors import ModelfleetError
from modelfleet.protocol.rules import MAX_DRIFT, format_window
from modelfleet.protocol.rules import MAX_MS as MAX_LATENCY_MS

__all__ = ["MAX_DRIFT", "MAX_LATENCY_MS", "MAX_MESSAGE", "ModelState", "format_window"]

MAX_MESSAGE = 1024  # what the agent sends (the fleet API takes up to rules.MAX_MESSAGE)
ModelState = wire.ModelState


class ProtocolError(ModelfleetError):
    """The fleet API sent something the agent cannot use; nothing is changed on the device."""


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

    def to_message(self) -> wire.ModelReport:
        fields = asdict(self) | {"message": self.message[:MAX_MESSAGE]}
        return wire.ModelReport.model_construct(**fields)

    def to_json(self) -> dict[str, Any]:
        return self.to_message().to_json()


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

    def to_message(self) -> wire.HealthSample:
        fields = asdict(self)
        fields["window"] = format_window(fields.pop("window_seconds"))
        for name, maximum, digits in _CLAMPED:
            if fields[name] is not None:
                fields[name] = _clamp(fields[name], maximum, digits)
        return wire.HealthSample.model_construct(**fields)

    def to_json(self) -> dict[str, Any]:
        return self.to_message().to_json()


#: Figures brought into the protocol's ranges (and rounded) before they are sent.
_CLAMPED = (
    ("latency_p50_ms", MAX_LATENCY_MS, 3),
    ("latency_p95_ms", MAX_LATENCY_MS, 3),
    ("drift_score", MAX_DRIFT, 6),
)


def _clamp(value: float, maximum: float, digits: int) -> float:
    return round(min(max(value, 0.0), maximum), digits)


@dataclass(frozen=True)
class Report:
    """The body of ``POST /v1/report``: every model's state plus health windows not yet sent,
    and where it stands among this agent's reports (``sequence``: session, number)."""

    agent_version: str
    models: tuple[ModelReport, ...]
    health: tuple[HealthWindow, ...] = field(default=())
    sequence: tuple[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``POST /v1/report`` body."""
        seq = self.sequence
        return wire.Report.model_construct(
            agent_version=self.agent_version,
            models=tuple(m.to_message() for m in self.models),
            health=tuple(h.to_message() for h in self.health),
            sequence=None
            if seq is None
            else wire.ReportSequence.model_construct(session=seq[0], number=seq[1]),
        ).to_json()


def parse_desired(body: object, etag: str | None = None) -> DesiredState:
    """Parse a ``GET /v1/desired`` body; raises :class:`ProtocolError` naming the bad field."""
    try:
        msg = wire.DesiredState.model_validate(body, by_alias=True)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        raise ProtocolError(f"desired state{where}: {err['msg']}") from exc
    return DesiredState(
        gateway=msg.gateway,
        models=tuple(
            DesiredModel(
                model=m.model,
                version=m.version,
                digest=m.digest,
                artifact_uri=m.artifact.uri,
                signature_uri=m.signature.uri if m.signature else None,
                attestation_uris=tuple(a.uri for a in m.attestations),
                release=m.release,
                step="" if m.step is None else str(m.step),
            )
            for m in msg.models
        ),
        poll_after_seconds=msg.poll_after_seconds,
        etag=etag,
    )
