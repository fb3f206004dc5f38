"""The stack's ``modelfleet fleet-api`` flags: the demo's defaults, overridden by Python name."""

from __future__ import annotations

import pytest

from modelfleet.demo.settings import FLEET_API_DEFAULTS, FleetApiSettings


def test_defaults_become_every_flag() -> None:
    args = FleetApiSettings().args()
    assert args[::2] == [f"--{flag}" for flag in FLEET_API_DEFAULTS]
    assert args[1::2] == [str(value) for value in FLEET_API_DEFAULTS.values()]


def test_keywords_override_their_flag_and_extra_comes_last() -> None:
    args = FleetApiSettings(poll_interval=5, rate_burst=20, extra=("--workers", "2")).args()
    assert args[args.index("--poll-interval") + 1] == "5.0"
    assert args[args.index("--rate-burst") + 1] == "20.0"
    assert args[-2:] == ["--workers", "2"]


def test_an_unknown_flag_is_refused() -> None:
    with pytest.raises(TypeError, match="unknown flags pol-interval"):
        FleetApiSettings(pol_interval=1)
