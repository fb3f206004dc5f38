"""The edge protocol's messages, defined once (DESIGN §4): what ``GET /v1/desired`` answers and
what ``POST /v1/report`` carries.

The agent builds its reports and reads its desired state through these models, the fleet API
validates reports with them (:func:`modelfleet.protocol.parse_report`) and renders desired
states with them, and the OpenAPI document (:mod:`modelfleet.protocol.openapi`) is generated
from them. Field names are camelCase on the wire (``latencyP95Ms``) and snake_case in Python.

A report is strict: unknown fields, wrong JSON types (``true`` for a count, ``"12"`` for a
latency) and values EdgeGateway status would refuse are errors. A desired state is read
tolerantly (extra fields ignored), so a newer fleet API can add fields without breaking older
agents. Model states (``models[].state``) are :class:`~modelfleet.core.types.ModelStateKind`:
``Idle`` (nothing to do), ``Downloading`` (into the inactive slot, resumable), ``Downloaded``
(all bytes on disk, not verified), ``Verifying`` (digest, signature and provenance against the
agent's own TrustPolicy), ``Activating`` (the verified slot is active, health check running),
``Active`` (passed its health check), ``Failed`` (could not be installed; the previous model is
still active) and ``RolledBack`` (activated, failed its health check, switched back).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
)
from pydantic.alias_generators import to_camel

from modelfleet.core.types import ModelStateKind
from modelfleet.protocol import rules

ModelState = ModelStateKind


def _whole(value: object) -> object:
    """JSON has one number type: ``3.0`` is the integer 3 (``3.5`` stays a float and fails)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: The validation context of a body received over the wire (see :func:`_not_null`).
WIRE: Final = {"wire": True}


def _not_null(value: object, info: ValidationInfo) -> object:
    """On the wire an optional report field is left out when it has no value and ``null`` is
    refused; in Python, ``None`` is how it is left out."""
    if value is None and info.context == WIRE:
        raise ValueError("must be left out rather than null")
    return value


def _text(max_length: int, pattern: str | None = None, **kw: Any) -> Any:
    return Field(max_length=max_length, pattern=pattern, **kw)


ModelName = Annotated[str, Strict(), _text(63, rules.MODEL_RE.pattern)]
Version = Annotated[str, Strict(), _text(128, rules.VERSION_RE.pattern)]
Count = Annotated[int, Strict(), Field(ge=0, le=rules.MAX_COUNT), BeforeValidator(_whole)]
Millis = Annotated[float, Strict(), Field(ge=0, le=rules.MAX_MS, allow_inf_nan=False)]
Drift = Annotated[float, Strict(), Field(ge=0, le=rules.MAX_DRIFT, allow_inf_nan=False)]
Slot = Literal["A", "B", ""]


class _Message(BaseModel):
    """camelCase on the wire, frozen, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        use_enum_values=False,
    )

    def to_json(self) -> dict[str, Any]:
        """The JSON object as sent (optional fields that are unset are left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ModelReport(_Message):
    """What a gateway says about one model: which version is where, and in which state.

    ``version`` and ``digest`` are required (non-empty) unless ``state`` is ``Idle``."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"properties": {"state": {"type": "string", "enum": ["Idle"]}}},
                {
                    "required": ["version", "digest"],
                    "properties": {
                        "version": {"type": "string", "minLength": 1},
                        "digest": {"type": "string", "minLength": 1},
                    },
                },
            ]
        }
    )

    model: ModelName
    version: Annotated[
        str, Strict(), _text(128, "^(|[A-Za-z0-9][A-Za-z0-9._+-]*)$", min_length=0)
    ] = ""
    digest: Annotated[str, Strict(), _text(71, "^(|sha256:[0-9a-f]{64})$")] = ""
    slot: Slot = ""
    state: ModelStateKind
    message: Annotated[str, Strict(), _text(rules.MAX_MESSAGE)] = ""


class HealthSample(_Message):
    """Aggregated inference health of one model version over one window: the only telemetry
    that leaves a gateway. ``errors`` must not exceed ``requests``; ``latencyP50Ms`` must not
    exceed ``latencyP95Ms``."""

    model: ModelName
    version: Version
    window: Annotated[
        str,
        Strict(),
        _text(
            rules.MAX_WINDOW, rules.WINDOW_RE.pattern, description="Aggregation window, e.g. 60s."
        ),
    ]
    window_end: (
        Annotated[
            str,
            Strict(),
            _text(
                40,
                rules.TIME_RE.pattern,
                description="End of the window by the gateway's clock (status records the fleet "
                "API's receipt time instead).",
                json_schema_extra={"format": "date-time"},
            ),
        ]
        | None
    ) = None
    requests: Count
    errors: Count
    latency_p50_ms: Millis | None = None
    latency_p95_ms: Millis | None = None
    drift_score: Drift | None = None

    _absent_not_null = field_validator(
        "window_end", "latency_p50_ms", "latency_p95_ms", "drift_score", mode="before"
    )(_not_null)

    def to_status(self) -> dict[str, Any]:
        """The EdgeGateway ``status.health[]`` item (without ``windowEnd``)."""
        return self.model_dump(by_alias=True, exclude_none=True, exclude={"window_end"})


class ReportSequence(_Message):
    """Where a report stands among its gateway's reports, so every fleet API replica can tell
    from its own copy of EdgeGateway status whether this report is next, already applied or
    must wait for one another replica accepted (docs/fleet-api.md, "Report order").

    ``session`` is chosen at random by each agent process when it starts; ``number`` starts at 1
    and goes up by one after each report answered ``written: true`` (a report answered
    ``written: false``, or not answered at all, is sent again with the same number)."""

    session: Annotated[
        str,
        Strict(),
        _text(
            rules.MAX_SESSION,
            rules.SESSION_RE.pattern,
            min_length=8,
            description="Random per agent process (at least 8 characters).",
        ),
    ]
    number: Annotated[int, Strict(), Field(ge=1, le=rules.MAX_COUNT), BeforeValidator(_whole)]


class Report(_Message):
    """The body of ``POST /v1/report``: every model's state plus health windows not yet sent.

    Each model at most once in ``models``. ``health`` may hold several windows of one model
    version (unsent ones, oldest first); the newest is recorded."""

    gateway: (
        Annotated[
            str,
            Strict(),
            _text(
                253,
                rules.GATEWAY_RE.pattern,
                description="Optional; if given it must be the caller's own name.",
            ),
        ]
        | None
    ) = None
    agent_version: Annotated[
        str, Strict(), _text(rules.MAX_AGENT_VERSION, rules.AGENT_VERSION_RE.pattern)
    ]
    models: tuple[ModelReport, ...] = Field(max_length=rules.MAX_MODELS)
    health: tuple[HealthSample, ...] = Field(default=(), max_length=rules.MAX_HEALTH)
    sequence: ReportSequence | None = Field(
        default=None,
        description="Optional (older agents send none: their reports are written before they "
        "are answered). With it a report is answered once accepted and written behind.",
    )

    _absent_not_null = field_validator("gateway", "sequence", mode="before")(_not_null)


class ReportResult(_Message):
    """The answer to an accepted report."""

    written: bool = Field(
        description="Whether EdgeGateway status is written for this report. Without "
        "``sequence``: it was written before this answer. With ``sequence``: the write is queued "
        "and happens behind the answer (false: status already holds what it says)."
    )
    reasons: tuple[Literal["models", "agentVersion", "health", "heartbeat", "sequence"], ...]


class Location(BaseModel):
    """Where to fetch something: ``{"uri": ...}``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    uri: Annotated[str, Strict(), Field(min_length=1)]


class DesiredModel(_Message):
    """One model the fleet API wants on a gateway."""

    model_config = ConfigDict(extra="ignore", json_schema_serialization_defaults_required=True)

    model: ModelName
    version: Version
    digest: Annotated[str, Strict(), Field(pattern=rules.DIGEST_RE.pattern)]
    artifact: Location
    signature: Location | None
    attestations: tuple[Location, ...]
    release: str = Field(default="", description="The ModelRelease that decided.")
    step: int | None = Field(
        default=None, description="The release's current step index while it rolls out, else null."
    )

    def to_json(self) -> dict[str, Any]:
        # every field always present (signature and step as null), as the schema requires
        return self.model_dump(mode="json", by_alias=True)


class DesiredState(_Message):
    """The answer to ``GET /v1/desired``. A model not listed: no instruction, keep what runs."""

    model_config = ConfigDict(extra="ignore", json_schema_serialization_defaults_required=True)

    gateway: Annotated[str, Strict(), Field(min_length=1)]
    models: tuple[DesiredModel, ...]
    poll_after_seconds: float | None = Field(
        default=None, ge=0, description="Seconds until the next poll (the fleet API sends one)."
    )

    @field_validator("models")
    @classmethod
    def _each_model_once(cls, models: tuple[DesiredModel, ...]) -> tuple[DesiredModel, ...]:
        names = [m.model for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"a model is listed twice in {names}")
        return models


class ErrorDetail(BaseModel):
    """What is wrong, for programs (``code``) and people (``message``)."""

    code: str
    message: str = Field(description="What is wrong, for people.")
    field: str | None = Field(default=None, description="The offending field or parameter.")


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the fleet API: ``{"error": {"code", "message", "field"?}}``."""

    error: ErrorDetail


def _aliases(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(f.alias or name for name, f in model.model_fields.items())


#: The fields of one ``models[]`` / ``health[]`` item of a report; EdgeGateway status holds the
#: same (``models[]`` adds ``since``, set by the fleet API).
MODEL_FIELDS: Final = _aliases(ModelReport)
HEALTH_FIELDS: Final = _aliases(HealthSample)
