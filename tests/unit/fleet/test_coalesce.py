"""Coalescing: which reports become EdgeGateway status writes, and what they contain."""

from __future__ import annotations

import datetime as dt
from typing import Any

from modelfleet.fleet.coalesce import (
    CoalescePolicy,
    format_time,
    latest_health,
    plan_status_patch,
)
from modelfleet.protocol import HealthSample, ModelReport, Report

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
DIGEST = "sha256:" + "a" * 64
POLICY = CoalescePolicy(
    health_interval=50,
    heartbeat_interval=300,
    active_heartbeat_interval=50,
    idle_health_interval=300,
)


def model(state: str = "Active", version: str = "1.0.0", message: str = "") -> ModelReport:
    return ModelReport(
        model="detector", state=state, version=version, digest=DIGEST, slot="A", message=message
    )


def health(requests: int = 100, window_end: str | None = None) -> HealthSample:
    return HealthSample(
        model="detector", version="1.0.0", window="60s", requests=requests, errors=0,
        window_end=window_end,
    )  # fmt: skip


def rep(*models: ModelReport, samples: tuple[HealthSample, ...] = ()) -> Report:
    return Report(agent_version="0.1.0", models=models, health=samples)


def apply(status: dict[str, Any], report: Report, at: dt.datetime, active: bool = False) -> Any:
    """Plan against ``status``; return (patch or None, the status after the write)."""
    patch = plan_status_patch(status, report, now=at, in_active_cohort=active, policy=POLICY)
    return patch, ({**status, **patch.status} if patch else status)


def test_the_first_report_writes_everything() -> None:
    patch, status = apply({}, rep(model(), samples=(health(),)), T0)
    assert patch is not None
    assert set(patch.reasons) == {"models", "agentVersion", "health", "heartbeat"}
    assert status["lastSeen"] == format_time(T0)
    assert status["models"][0]["since"] == format_time(T0)
    assert status["health"][0]["windowEnd"] == format_time(T0)


def test_an_unchanged_report_soon_after_is_not_written() -> None:
    _, status = apply({}, rep(model(), samples=(health(),)), T0)
    patch, _ = apply(status, rep(model(), samples=(health(),)), T0 + dt.timedelta(seconds=10))
    assert patch is None


def test_a_state_change_is_written_at_once_with_a_new_since() -> None:
    _, status = apply({}, rep(model("Downloading", "2.0.0")), T0)
    later = T0 + dt.timedelta(seconds=3)
    patch, status = apply(status, rep(model("Verifying", "2.0.0")), later)
    assert patch is not None and "models" in patch.reasons
    assert status["models"][0]["state"] == "Verifying"
    assert status["models"][0]["since"] == format_time(later)


def test_since_is_kept_when_only_the_message_changes() -> None:
    _, status = apply({}, rep(model("Downloading", "2.0.0", "10%")), T0)
    later = T0 + dt.timedelta(seconds=301)
    patch, status = apply(status, rep(model("Downloading", "2.0.0", "90%")), later)
    assert patch is not None and patch.reasons == ("heartbeat",)
    assert status["models"][0]["message"] == "90%"
    assert status["models"][0]["since"] == format_time(T0)


def test_a_message_only_change_waits_for_the_next_write() -> None:
    _, status = apply({}, rep(model("Downloading", "2.0.0", "10%")), T0)
    patch, _ = apply(
        status, rep(model("Downloading", "2.0.0", "20%")), T0 + dt.timedelta(seconds=5)
    )
    assert patch is None


def test_a_model_that_disappears_is_a_change() -> None:
    _, status = apply({}, rep(model()), T0)
    patch, status = apply(status, rep(), T0 + dt.timedelta(seconds=1))
    assert patch is not None and status["models"] == []


def test_health_is_written_at_most_once_per_interval_in_an_active_cohort() -> None:
    _, status = apply({}, rep(model(), samples=(health(100),)), T0, active=True)
    patch, status = apply(
        status, rep(model(), samples=(health(200),)), T0 + dt.timedelta(seconds=30), active=True
    )
    assert patch is None
    patch, status = apply(
        status, rep(model(), samples=(health(300),)), T0 + dt.timedelta(seconds=50), active=True
    )
    assert patch is not None and set(patch.reasons) == {"health", "heartbeat"}
    assert status["health"][0]["requests"] == 300


def test_health_outside_an_active_cohort_waits_for_the_idle_interval() -> None:
    _, status = apply({}, rep(model(), samples=(health(100),)), T0)
    at = T0 + dt.timedelta(seconds=120)
    assert apply(status, rep(model(), samples=(health(200),)), at)[0] is None
    patch, _ = apply(status, rep(model(), samples=(health(300),)), T0 + dt.timedelta(seconds=300))
    assert patch is not None and "health" in patch.reasons


def test_fresh_health_rides_along_with_a_state_change() -> None:
    _, status = apply({}, rep(model(), samples=(health(100),)), T0)
    later = T0 + dt.timedelta(seconds=5)
    patch, status = apply(status, rep(model("Failed"), samples=(health(7),)), later)
    assert patch is not None and "health" not in patch.reasons
    assert status["health"][0]["requests"] == 7


def test_heartbeat_is_rare_outside_an_active_cohort() -> None:
    _, status = apply({}, rep(model()), T0)
    assert apply(status, rep(model()), T0 + dt.timedelta(seconds=299))[0] is None
    patch, _ = apply(status, rep(model()), T0 + dt.timedelta(seconds=300))
    assert patch is not None and patch.reasons == ("heartbeat",)
    assert set(patch.status) == {"lastSeen", "agentVersion"}


def test_heartbeat_is_frequent_in_an_active_cohort() -> None:
    _, status = apply({}, rep(model()), T0)
    patch, _ = apply(status, rep(model()), T0 + dt.timedelta(seconds=50), active=True)
    assert patch is not None and patch.reasons == ("heartbeat",)


def test_a_new_agent_version_is_written_at_once() -> None:
    _, status = apply({}, rep(model()), T0)
    newer = Report(agent_version="0.2.0", models=(model(),))
    patch = plan_status_patch(
        status, newer, now=T0 + dt.timedelta(seconds=1), in_active_cohort=False, policy=POLICY
    )
    assert patch is not None and patch.reasons == ("agentVersion",)


def test_latest_health_keeps_the_newest_window_per_version() -> None:
    old = health(1, "2026-01-01T00:00:00Z")
    new = health(2, "2026-01-01T00:01:00Z")
    assert latest_health([new, old]) == [new]
    assert latest_health([health(1), health(2)]) == [health(2)]
