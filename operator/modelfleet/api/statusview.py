"""What ``modelfleet status`` shows, as data and as text: pure, no cluster access.

:func:`release_view` turns a ModelRelease object (a dict from the API server) and its Events into
the documented ``-o json`` shape (``docs/status.md``, version :data:`SCHEMA`); :func:`render` and
:func:`render_table` draw that shape for a terminal. Fields are read defensively: a release the
operator has not touched yet (no status) still renders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

SCHEMA = "modelfleet.dev/status/v1"

#: Gate figures in ``status.rollout.gates`` → (threshold in ``spec.rollout.gates``, kind, default).
#: ``max``: the value must not exceed the threshold; ``min``: it must reach it.
GATE_CHECKS: tuple[tuple[str, str, str, float | None], ...] = (
    ("failedGateways", "maxFailedGateways", "max", 0),
    ("errorRate", "maxErrorRate", "max", None),
    ("latencyP95Ms", "maxLatencyP95Ms", "max", None),
    ("driftScore", "maxDriftScore", "max", None),
    ("reportingRatio", "minReportingRatio", "min", 0.9),
    ("requests", "minRequests", "min", 0),
)
_GATE_META = {"result", "reason", "evaluatedAt"}


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _verification(v: Mapping[str, Any]) -> dict[str, Any] | None:
    if not v:
        return None
    provenance = _map(v.get("provenance"))
    return {
        "verified": bool(v.get("verified")),
        "signer": v.get("signer"),
        "issuer": v.get("issuer"),
        "authority": v.get("authority"),
        "digest": v.get("digest"),
        "modelDigest": v.get("modelDigest"),
        "tlogIndex": v.get("tlogIndex"),
        "at": v.get("at"),
        "reason": v.get("reason") or None,
        "provenance": dict(provenance) or None,
    }


def _version(snapshot: Any) -> dict[str, Any] | None:
    s = _map(snapshot)
    if not s.get("version"):
        return None
    return {
        "version": s.get("version"),
        "digest": s.get("digest"),
        "since": s.get("since"),
        "revoked": bool(s.get("revoked")),
        "verification": _verification(_map(s.get("verification"))),
    }


def gate_checks(measured: Mapping[str, Any], thresholds: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each measured gate figure beside its threshold; ``ok`` is ``None`` without a threshold or
    without a value (nothing measured is never a pass)."""
    checks: list[dict[str, Any]] = []
    known = set()
    for name, limit_key, kind, default in GATE_CHECKS:
        known.add(name)
        value = measured.get(name)
        limit = thresholds.get(limit_key, default)
        if value is None and limit is None:
            continue
        ok: bool | None = None
        if isinstance(value, int | float) and isinstance(limit, int | float):
            ok = value <= limit if kind == "max" else value >= limit
        checks.append(
            {"name": name, "value": value, "threshold": limit, "kind": kind, "ok": ok,
             "thresholdField": limit_key}
        )  # fmt: skip
    for name, value in measured.items():  # figures added later (e.g. query gates): shown as is
        if name not in known and name not in _GATE_META:
            checks.append(
                {"name": name, "value": value, "threshold": None, "kind": None, "ok": None,
                 "thresholdField": None}
            )  # fmt: skip
    return checks


def event_view(event: Mapping[str, Any]) -> dict[str, Any]:
    """A core/v1 Event, as the status shows it."""
    source = _map(event.get("source"))
    when = (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or _map(event.get("metadata")).get("creationTimestamp")
    )
    return {
        "time": when,
        "type": event.get("type"),
        "reason": event.get("reason"),
        "message": event.get("message"),
        "count": event.get("count") or 1,
        "source": source.get("component") or event.get("reportingComponent") or None,
    }


def _order(event: Mapping[str, Any]) -> tuple[str, int]:
    rv = str(_map(event.get("metadata")).get("resourceVersion") or "0")
    return str(event_view(event)["time"] or ""), int(rv) if rv.isdigit() else 0


def last_events(events: Sequence[Mapping[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The ``limit`` newest events, oldest first (same second: in the order they were written)."""
    views = [event_view(e) for e in sorted(events, key=_order)]
    return views[-limit:] if limit > 0 else []


def release_view(
    obj: Mapping[str, Any], events: Sequence[Mapping[str, Any]] | None = None, *, limit: int = 10
) -> dict[str, Any]:
    """The ``-o json`` document of one release (see ``docs/status.md``)."""
    meta = _map(obj.get("metadata"))
    spec = _map(obj.get("spec"))
    status = _map(obj.get("status"))
    rollout = _map(status.get("rollout"))
    spec_rollout = _map(spec.get("rollout"))
    steps = [s for s in spec_rollout.get("steps") or [] if isinstance(s, Mapping)]
    gates = _map(rollout.get("gates"))
    source = _map(status.get("source"))
    index = rollout.get("step")
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "model": spec.get("model"),
        "version": spec.get("version"),
        "paused": bool(spec.get("paused")),
        "generation": meta.get("generation"),
        "observedGeneration": status.get("observedGeneration"),
        "phase": status.get("phase") or "Pending",
        "reason": status.get("reason"),
        "message": status.get("message"),
        "step": {
            "index": index,
            "name": rollout.get("stepName"),
            "of": len(steps),
            "startedAt": rollout.get("stepStartedAt"),
            "convergedAt": rollout.get("convergedAt"),
        },
        "cohorts": [
            {
                k: c.get(k, 0) if k != "name" else c.get("name")
                for k in ("name", "assigned", "active", "failed", "reporting")
            }
            for c in rollout.get("cohorts") or []
            if isinstance(c, Mapping)
        ],
        "gates": {
            "result": gates.get("result"),
            "reason": gates.get("reason"),
            "evaluatedAt": gates.get("evaluatedAt"),
            "checks": gate_checks(gates, _map(spec_rollout.get("gates"))) if gates else [],
        },
        "stable": _version(status.get("stable")),
        "target": _version(status.get("target")),
        "verification": _verification(_map(status.get("verification"))),
        "source": dict(source) or None,
        "conditions": [
            {k: c.get(k) for k in ("type", "status", "reason", "message")}
            for c in status.get("conditions") or []
            if isinstance(c, Mapping)
        ],
        "history": [dict(h) for h in status.get("history") or [] if isinstance(h, Mapping)],
    }
    if events is not None:
        doc["events"] = last_events(events, limit)
    return doc


# --------------------------------------------------------------------------- text


def bar(done: int, total: int, width: int = 24, *, unicode: bool = True) -> str:
    """``[#####-----]`` for ``done`` of ``total``."""
    full, empty = ("█", "░") if unicode else ("#", "-")
    filled = 0 if total <= 0 else round(width * min(done, total) / total)
    return "[" + full * filled + empty * (width - filled) + "]"


def age(stamp: Any, now: datetime | None = None) -> str:
    """``5m``, ``2h``, ``3d`` since an RFC 3339 time; ``-`` when unknown."""
    if not isinstance(stamp, str) or not stamp:
        return "-"
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _short(digest: Any, n: int = 12) -> str:
    return str(digest).removeprefix("sha256:")[:n] if digest else "-"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _version_lines(label: str, v: Mapping[str, Any] | None, now: datetime | None) -> list[str]:
    if v is None:
        return [f"{label:<8}-"]
    revoked = "  REVOKED" if v.get("revoked") else ""
    lines = [
        f"{label:<8}{v['version']}  digest {_short(v.get('digest'))}  since "
        f"{age(v.get('since'), now)}{revoked}"
    ]
    ver = v.get("verification")
    if ver:
        state = "verified" if ver.get("verified") else "NOT verified"
        who = str(ver.get("signer") or "-")
        if who.startswith("sha256:"):  # a public key, named by its fingerprint
            who = f"key {_short(who, 16)}"
        issuer = f" ({ver['issuer']})" if ver.get("issuer") else ""
        authority = f"  authority {ver['authority']}" if ver.get("authority") else ""
        lines.append(f"{'':<8}{state} by {who}{issuer}{authority}")
        lines.append(
            f"{'':<8}model digest {_short(ver.get('modelDigest'), 16)}  artifact digest "
            f"{_short(ver.get('digest'), 16)}"
        )
    return lines


def render(view: Mapping[str, Any], *, unicode: bool = True, now: datetime | None = None) -> str:
    """The status of one release as a terminal page."""
    lines: list[str] = []
    title = f"ModelRelease {view['namespace']}/{view['name']}"
    lines.append(f"{title}  model {view.get('model') or '-'}  spec version {view.get('version')}")
    phase = view["phase"]
    reason = f" ({view['reason']})" if view.get("reason") else ""
    paused = "  [spec.paused]" if view.get("paused") else ""
    lines.append(f"Phase   {phase}{reason}{paused}")
    if view.get("message"):
        lines.append(f"        {view['message']}")
    gen, seen = view.get("generation"), view.get("observedGeneration")
    if gen is not None and seen is not None and gen != seen:
        lines.append(f"        (status is of generation {seen}; the spec is at {gen})")
    lines.append("")
    lines.extend(_version_lines("Stable", view.get("stable"), now))
    lines.extend(_version_lines("Target", view.get("target"), now))
    src = view.get("source") or {}
    if src:
        lines.append(
            f"Source  {src.get('repoURL') or '-'} @ {src.get('revision') or '-'}"
            f"{'  ' + src['path'] if src.get('path') else ''}"
        )
    else:
        lines.append("Source  - (no Git source recorded)")
    step = view.get("step") or {}
    if step.get("index") is not None and step.get("of"):
        lines.append("")
        lines.append(
            f"Step    {step['index'] + 1}/{step['of']} {step.get('name') or ''}  started "
            f"{age(step.get('startedAt'), now)} ago"
            + (
                f", converged {age(step.get('convergedAt'), now)} ago"
                if step.get("convergedAt")
                else ""
            )
        )
    cohorts = view.get("cohorts") or []
    if cohorts:
        lines.append("Cohorts")
        width = max(len(str(c["name"])) for c in cohorts)
        for c in cohorts:
            assigned, active = int(c.get("assigned") or 0), int(c.get("active") or 0)
            lines.append(
                f"  {c['name']:<{width}}  {bar(active, assigned, unicode=unicode)} "
                f"{active:>4}/{assigned:<4} active  {c.get('failed', 0)} failed  "
                f"{c.get('reporting', 0)} reporting"
            )
    gates = view.get("gates") or {}
    if gates.get("result") or gates.get("checks"):
        lines.append(
            f"Gates   {gates.get('result') or '-'}"
            + (f" ({gates['reason']})" if gates.get("reason") else "")
            + (
                f"  evaluated {age(gates.get('evaluatedAt'), now)} ago"
                if gates.get("evaluatedAt")
                else ""
            )
        )
        for check in gates.get("checks") or []:
            mark = {True: "ok", False: "FAIL", None: "--"}[check["ok"]]
            limit = (
                f"{'<=' if check['kind'] == 'max' else '>='} {_fmt(check['threshold'])}"
                if check["threshold"] is not None
                else "(no threshold)"
            )
            lines.append(f"  {mark:<4} {check['name']:<16} {_fmt(check['value']):>10}  {limit}")
    conditions = view.get("conditions") or []
    if conditions:
        lines.append(
            "Conditions  "
            + "  ".join(
                f"{c['type']}={c['status']}" + (f"({c['reason']})" if c.get("reason") else "")
                for c in conditions
            )
        )
    events = view.get("events")
    if events is not None:
        lines.append("")
        lines.append("Events" if events else "Events  (none)")
        for e in events:
            count = f" x{e['count']}" if (e.get("count") or 1) > 1 else ""
            lines.append(
                f"  {age(e.get('time'), now):>4}  {e.get('type') or '-':<7} "
                f"{e.get('reason') or '-':<22} {e.get('message') or ''}{count}"
            )
    return "\n".join(lines)


def render_table(views: Sequence[Mapping[str, Any]], *, now: datetime | None = None) -> str:
    """One line per release (``modelfleet status`` without a name)."""
    rows = [("NAME", "MODEL", "PHASE", "STEP", "ACTIVE", "STABLE", "TARGET", "GATES", "REASON")]
    for v in views:
        step = v.get("step") or {}
        cohorts = v.get("cohorts") or []  # each step's own gateways: the sum is the reach
        active = (
            f"{sum(int(c.get('active') or 0) for c in cohorts)}/"
            f"{sum(int(c.get('assigned') or 0) for c in cohorts)}"
            if cohorts
            else "-"
        )
        where = (
            f"{step['index'] + 1}/{step['of']} {step.get('name') or ''}".strip()
            if step.get("index") is not None and step.get("of")
            else "-"
        )
        rows.append(
            (
                str(v.get("name")),
                str(v.get("model") or "-"),
                str(v.get("phase")),
                where,
                active,
                str((v.get("stable") or {}).get("version") or "-"),
                str((v.get("target") or {}).get("version") or "-"),
                str((v.get("gates") or {}).get("result") or "-"),
                str(v.get("reason") or ""),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)), r[-1]]).rstrip()
        for r in rows
    )
