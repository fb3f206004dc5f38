"""The edge protocol between gateway agents and the fleet API (DESIGN §4), defined once.

* :mod:`~modelfleet.protocol.rules`: limits and patterns (names, digests, windows, sizes);
* :mod:`~modelfleet.protocol.messages`: the pydantic models of every message, used by the agent
  to build reports and read desired states and by the fleet API to validate and render them;
* :mod:`~modelfleet.protocol.parse`: strict decoding of what a gateway sends, and the error
  every refused request carries (``{"error": {"code", "message", "field"?}}``);
* :mod:`~modelfleet.protocol.openapi`: the OpenAPI document, generated from the models.

Imports only ``core`` (the model states) and pydantic: the agent, the fleet API and the API
views all stand on it.
"""

from modelfleet.protocol.messages import (
    HEALTH_FIELDS,
    MODEL_FIELDS,
    DesiredModel,
    DesiredState,
    HealthSample,
    Location,
    ModelReport,
    ModelState,
    Report,
    ReportResult,
    ReportSequence,
)
from modelfleet.protocol.parse import (
    DesiredQuery,
    ProtocolError,
    decode_json,
    parse_desired_query,
    parse_report,
)

__all__ = [
    "HEALTH_FIELDS",
    "MODEL_FIELDS",
    "DesiredModel",
    "DesiredQuery",
    "DesiredState",
    "HealthSample",
    "Location",
    "ModelReport",
    "ModelState",
    "ProtocolError",
    "Report",
    "ReportResult",
    "ReportSequence",
    "decode_json",
    "parse_desired_query",
    "parse_report",
]
