"""Durations and timestamps as the CRDs spell them: the one place that parses and formats them.

Durations: ``500ms``, ``90s``, ``10m``, ``1h30m``. The grammar is the one the CRD's CEL rule
accepts, ``^([0-9]+(ms|s|m|h))+$``: one or more ``<integer><unit>`` groups with units ``h``,
``m``, ``s`` and ``ms``. Timestamps: RFC 3339 in UTC with a ``Z`` (``2026-01-02T03:04:05Z``).
Pure functions, no clock.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from modelfleet.errors import ConfigError

_WHOLE = re.compile(r"^(?:[0-9]+(?:ms|s|m|h))+$")
_PART = re.compile(r"([0-9]+)(ms|s|m|h)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}


class DurationError(ConfigError):
    """A duration string that does not follow the ``1h30m`` grammar."""


def parse_duration(text: str, *, field: str = "duration") -> timedelta:
    """Parse ``text`` (e.g. ``"1h30m"``) into a :class:`timedelta`.

    ``field`` names the manifest field in the error message.
    """
    value = text.strip() if isinstance(text, str) else text
    if not isinstance(value, str) or not _WHOLE.fullmatch(value):
        raise DurationError(
            f"{field}: {text!r} is not a duration; use digits and units h, m, s or ms, "
            "e.g. 90s, 10m, 1h30m or 500ms"
        )
    millis = sum(int(n) * _UNIT_MS[unit] for n, unit in _PART.findall(value))
    return timedelta(milliseconds=millis)


def format_duration(value: timedelta) -> str:
    """The shortest ``1h30m``-style spelling of ``value`` (``0s`` for zero)."""
    millis = round(value.total_seconds() * 1000)
    if millis < 0:
        raise ValueError(f"negative duration {value!r}")
    if millis == 0:
        return "0s"
    parts: list[str] = []
    for unit in ("h", "m", "s", "ms"):
        n, millis = divmod(millis, _UNIT_MS[unit])
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def parse_time(value: str, *, field: str = "timestamp") -> datetime:
    """Parse an RFC 3339 timestamp (``2026-01-02T03:04:05Z``) into an aware UTC datetime."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{field}: {value!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``; microseconds kept when present (timers are never rounded)."""
    value = value.astimezone(UTC)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
