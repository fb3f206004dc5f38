"""The edge protocol's limits and patterns, stated once (the messages in
:mod:`modelfleet.protocol.messages` are built from them).

The agent emits reports within these rules and the fleet API
(:func:`modelfleet.protocol.parse_report`) refuses anything outside them, and everything it
accepts is also what the operator parses back from EdgeGateway status
(:func:`modelfleet.api.parse_gateway`): a report can never be accepted and then make a gateway
unreadable to the gates. Patterns are anchored for JSON Schema (the OpenAPI document publishes
them) and always applied with :func:`matches`, i.e. ``re.fullmatch``: ``$`` in a Python pattern
also matches before a final newline, so ``"1.0.0\\n"`` would pass ``pattern.match``.
"""

from __future__ import annotations

import re
from typing import Final

from modelfleet.core.types import ModelStateKind

STATES: Final = tuple(s.value for s in ModelStateKind)
SLOTS: Final = ("A", "B", "")

MAX_BODY_BYTES: Final = 64 * 1024
MAX_MODELS: Final = 32
MAX_HEALTH: Final = 256
MAX_MESSAGE: Final = 4096
MAX_AGENT_VERSION: Final = 64
MAX_WINDOW: Final = 32
MAX_COUNT: Final = 2**53 - 1
MAX_MS: Final = 1e7
MAX_DRIFT: Final = 1e6
MAX_SESSION: Final = 64
MAX_WAIT_SECONDS: Final = 60  # long poll: GET /v1/desired?wait=

#: The response header that repeats ``pollAfterSeconds`` (also on 304 answers).
POLL_AFTER_HEADER: Final = "Modelfleet-Poll-After"

MODEL_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
VERSION_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
DIGEST_RE: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
# Whole units only: the duration grammar of ModelRelease specs (modelfleet.core.times), which
# is how the operator reads status.health[].window back. "0.5s" is not a duration: send "500ms".
WINDOW_RE: Final = re.compile(r"^([0-9]{1,9}(ms|s|m|h)){1,4}$")
AGENT_VERSION_RE: Final = re.compile(r"^[\x21-\x7e]{1,64}$")
SESSION_RE: Final = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
GATEWAY_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
TIME_RE: Final = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)


def matches(pattern: re.Pattern[str], value: str) -> bool:
    """Whether the *whole* of ``value`` matches (never a prefix, never before a final newline)."""
    return pattern.fullmatch(value) is not None


def format_window(seconds: float) -> str:
    """A window length as the protocol spells it: ``60s``, or ``2500ms`` below ten seconds when
    not a whole number of seconds (always whole units, at least 1)."""
    if seconds >= 10 or float(seconds).is_integer():
        return f"{max(1, round(seconds))}s"
    return f"{max(1, round(seconds * 1000))}ms"
