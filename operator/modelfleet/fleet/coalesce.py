"""Coalescing of gateway reports into EdgeGateway status writes (pure; no I/O, no clock reads).

10,000 gateways reporting every minute would be 10,000 API-server writes a minute if every
report were written. :func:`plan_status_patch` decides, from the status the API server holds now
(as seen by the watch) and one validated report, whether a write is due and what it contains:

* **state changes at once**: a model appearing, disappearing or changing version, digest, slot
  or state; a new agent version;
* **health at most once per ``health_interval``** while the gateway is in an active cohort
  (assigned a version being rolled out: the operator's gates read it), else at most once per
  ``idle_health_interval``; measured from the newest ``windowEnd`` already in status, so several
  fleet API replicas agree without talking to each other;
* **heartbeat** (``lastSeen``) when older than ``heartbeat_interval``, or than
  ``active_heartbeat_interval`` in an active cohort, so ``minReportingRatio`` sees it reporting;
* anything else that differs (a message, newer health) rides along with the next write.

Every write carries ``lastSeen`` and is one merge patch of the status subresource: all or nothing.

A report with a ``sequence`` (:func:`order_of`) also writes ``reportSequence``: the session and
number of the last report applied, from which any replica tells, on its own copy of status,
whether a report is already applied, next in order, or must wait for a write another replica
promised.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelfleet.protocol import HealthSample, ModelReport, Report, ReportSequence

_KEYS = ("model", "version", "digest", "slot", "state")


@dataclass(frozen=True)
class CoalescePolicy:
    """How often each kind of status write may happen, in seconds."""

    health_interval: float = 50.0
    heartbeat_interval: float = 180.0
    active_heartbeat_interval: float = 50.0
    idle_health_interval: float = 600.0


class Order(enum.Enum):
    """Where a report with a ``sequence`` stands against a copy of its gateway's status."""

    APPLIED = "applied"
    """Status holds this report's number or a later one of its session: nothing to write."""
    NEXT = "next"
    """Status holds every write promised before this report (number - 1, or this number from
    an earlier attempt): it can be planned on this copy."""
    WAIT = "wait"
    """A write promised before this report (number - 1 of its session) is not in this copy:
    another replica has it queued, or this copy lags."""
    FIRST = "first"
    """The first report of an agent session: written, to record the session."""


def sequence_of(status: Mapping[str, Any] | None) -> tuple[str, int] | None:
    """``status.reportSequence`` as (session, number), or None when absent or unreadable."""
    raw = (status or {}).get("reportSequence")
    if not isinstance(raw, Mapping):
        return None
    session, number = raw.get("session"), raw.get("number")
    if not isinstance(session, str) or not isinstance(number, int) or isinstance(number, bool):
        return None
    return session, number


def order_of(status: Mapping[str, Any] | None, sequence: ReportSequence) -> Order:
    """How a report numbered ``sequence`` relates to ``status`` (see :class:`Order`)."""
    held = sequence_of(status)
    if held is not None and held[0] == sequence.session:
        if held[1] > sequence.number:
            return Order.APPLIED
        return Order.NEXT if held[1] >= sequence.number - 1 else Order.WAIT
    return Order.FIRST if sequence.number == 1 else Order.WAIT


@dataclass(frozen=True)
class StatusPatch:
    """One merge patch for ``status`` and why it is written (``reasons``: models, agentVersion,
    health, heartbeat)."""

    status: dict[str, Any]
    reasons: tuple[str, ...]

    def body(self) -> dict[str, Any]:
        return {"status": self.status}


def format_time(when: dt.datetime) -> str:
    """RFC 3339 UTC with second precision, as Kubernetes writes timestamps."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> dt.datetime | None:
    """An RFC 3339 timestamp from status, or None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _key(item: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(item.get(k) or "") for k in _KEYS)


def _status_models(report: Sequence[ModelReport], current: Sequence[Any], now: str) -> list[Any]:
    by_model = {m.get("model"): m for m in current if isinstance(m, Mapping)}
    out: list[dict[str, Any]] = []
    for m in report:
        item: dict[str, Any] = {
            "model": m.model,
            "version": m.version,
            "digest": m.digest,
            "slot": m.slot,
            "state": m.state,
            "message": m.message,
        }
        old = by_model.get(m.model)
        unchanged = old is not None and _key(old) == _key(item) and old.get("since")
        item["since"] = old["since"] if unchanged and old is not None else now
        out.append(item)
    return out


def latest_health(samples: Sequence[HealthSample]) -> list[HealthSample]:
    """One sample per (model, version): the newest by ``windowEnd``, else the last listed
    (agents send unsent windows oldest first). Order of first appearance is kept."""
    best: dict[tuple[str, str], tuple[int, HealthSample]] = {}
    for i, s in enumerate(samples):
        key = (s.model, s.version)
        old = best.get(key)
        if old is None:
            best[key] = (i, s)
            continue
        newer = (
            s.window_end is None
            or old[1].window_end is None
            or parse_time(s.window_end) >= parse_time(old[1].window_end)  # type: ignore[operator]
        )
        if newer:
            best[key] = (old[0], s)
    return [s for _, s in sorted(best.values(), key=lambda item: item[0])]


def _age(now: dt.datetime, then: dt.datetime | None) -> float:
    return float("inf") if then is None else (now - then).total_seconds()


def _newest_window_end(health: Sequence[Any]) -> dt.datetime | None:
    ends = [
        t
        for h in health
        if isinstance(h, Mapping) and (t := parse_time(h.get("windowEnd"))) is not None
    ]
    return max(ends, default=None)


def plan_status_patch(
    current: Mapping[str, Any] | None,
    report: Report,
    *,
    now: dt.datetime,
    in_active_cohort: bool,
    policy: CoalescePolicy,
    force: bool = False,
) -> StatusPatch | None:
    """The status write ``report`` calls for given ``current`` status, or None (coalesced);
    with ``force``, a write whatever it holds (reason ``sequence`` when nothing else is due)."""
    status = current or {}
    now_s = format_time(now)
    reasons: list[str] = []
    extras = False

    raw_models = status.get("models")
    cur_models: list[Any] = raw_models if isinstance(raw_models, list) else []
    new_models = _status_models(report.models, cur_models, now_s)
    cur_keys = [_key(m) for m in cur_models if isinstance(m, Mapping)]
    if cur_keys != [_key(m) for m in new_models]:
        reasons.append("models")
    elif [m.get("message", "") for m in cur_models] != [m["message"] for m in new_models]:
        extras = True

    if status.get("agentVersion") != report.agent_version:
        reasons.append("agentVersion")

    raw_health = status.get("health")
    cur_health: list[Any] = raw_health if isinstance(raw_health, list) else []
    new_health = [h.to_status() for h in latest_health(report.health)]
    health_due = False
    every = policy.health_interval if in_active_cohort else policy.idle_health_interval
    if new_health and _age(now, _newest_window_end(cur_health)) >= every:
        health_due = True
        reasons.append("health")

    beat = policy.active_heartbeat_interval if in_active_cohort else policy.heartbeat_interval
    if _age(now, parse_time(status.get("lastSeen"))) >= beat:
        reasons.append("heartbeat")

    if not reasons and not force:
        return None
    if not reasons:
        reasons.append("sequence")
    patch: dict[str, Any] = {"lastSeen": now_s, "agentVersion": report.agent_version}
    if report.sequence is not None:
        patch["reportSequence"] = {
            "session": report.sequence.session,
            "number": report.sequence.number,
        }
    if "models" in reasons or extras:
        patch["models"] = new_models
    if new_health:
        stripped = [{k: v for k, v in h.items() if k != "windowEnd"} for h in cur_health]
        if health_due or stripped != new_health:
            patch["health"] = [{**h, "windowEnd": now_s} for h in new_health]
    return StatusPatch(status=patch, reasons=tuple(reasons))
