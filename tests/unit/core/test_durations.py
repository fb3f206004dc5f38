"""Durations: the ``1h30m`` grammar of the CRD."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modelfleet.core import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("1h0m5s250ms", timedelta(hours=1, seconds=5, milliseconds=250)),
        ("0s", timedelta(0)),
        ("2h", timedelta(hours=2)),
        ("1m1m", timedelta(minutes=2)),
    ],
)
def test_parse_duration_accepts_the_crd_grammar(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "10", "m", "1.5h", "-5m", "10 m", "1d", "5M", "1h 30m"])
def test_parse_duration_refuses_anything_else_naming_the_field(text: str) -> None:
    with pytest.raises(DurationError, match=r"^bake: .* is not a duration"):
        parse_duration(text, field="bake")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(seconds=1, milliseconds=500), "1s500ms"),
        (timedelta(hours=25), "25h"),
    ],
)
def test_format_duration_round_trips(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value
