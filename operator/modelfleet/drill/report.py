"""The readiness report of a drill: the figures of its :class:`~modelfleet.drill.timeline.Timeline`
judged against the user's targets, the scenario's own checks, and one verdict; as JSON (schema
:data:`SCHEMA`) and Markdown, plus the summary of ``modelfleet drill all``. Pure: no I/O here
(:mod:`modelfleet.drill.output` writes the files).

A drill passes when every check holds and both targets are met:

* detect: the time to detect is below ``detect`` (default: two report intervals); a fault
  never detected fails;
* roll back: the time to roll back is below ``rollBack`` (default 15 minutes); when no
  gateway was exposed there is nothing to roll back and the target holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from modelfleet.drill.timeline import Timeline

SCHEMA = "modelfleet.dev/drill-report/v1"
SUMMARY_SCHEMA = "modelfleet.dev/drill-summary/v1"


class Targets(NamedTuple):
    """What the user expects, in seconds: detect below ``detect``, roll back below
    ``roll_back``."""

    detect: float
    roll_back: float = 900.0


class Check(NamedTuple):
    """One expectation of the scenario (``ok``) with what was seen (``detail``)."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Report:
    """One drill's result."""

    scenario: str
    title: str
    namespace: str
    release: str
    gateways: int
    targets: Targets
    timeline: Timeline
    checks: tuple[Check, ...] = ()
    outcome: str = ""  # the release's final phase and reason, as seen
    started: str = ""  # RFC 3339, when the drill began
    error: str | None = None  # the drill could not run to its end
    report_interval: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def detect_ok(self) -> bool:
        t = self.timeline.time_to_detect
        return t is not None and t < self.targets.detect

    @property
    def roll_back_ok(self) -> bool:
        t = self.timeline.time_to_roll_back
        if t is None:
            return not self.timeline.exposed
        return t < self.targets.roll_back

    @property
    def passed(self) -> bool:
        return (
            self.error is None
            and all(c.ok for c in self.checks)
            and self.detect_ok
            and self.roll_back_ok
        )

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    def to_json(self) -> dict[str, Any]:
        tl = self.timeline
        return {
            "schema": SCHEMA,
            "scenario": self.scenario,
            "title": self.title,
            "namespace": self.namespace,
            "release": self.release,
            "gateways": self.gateways,
            "started": self.started,
            "reportIntervalSeconds": self.report_interval,
            "verdict": self.verdict,
            "error": self.error,
            "outcome": self.outcome,
            "badVersion": tl.bad_version,
            "timeToDetectSeconds": tl.time_to_detect,
            "timeToRollBackSeconds": tl.time_to_roll_back,
            "timeToRecoverSeconds": tl.time_to_recover,
            "gatewaysExposed": len(tl.exposed),
            "targets": {
                "detectSeconds": self.targets.detect,
                "rollBackSeconds": self.targets.roll_back,
                "detect": "pass" if self.detect_ok else "fail",
                "rollBack": "pass" if self.roll_back_ok else "fail",
            },
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "timeline": tl.to_json(),
            **({"extra": dict(self.extra)} if self.extra else {}),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Report:
        targets = doc["targets"]
        return cls(
            scenario=str(doc["scenario"]),
            title=str(doc["title"]),
            namespace=str(doc["namespace"]),
            release=str(doc["release"]),
            gateways=int(doc["gateways"]),
            targets=Targets(float(targets["detectSeconds"]), float(targets["rollBackSeconds"])),
            timeline=Timeline.from_json(doc["timeline"]),
            checks=tuple(Check(c["name"], bool(c["ok"]), c["detail"]) for c in doc["checks"]),
            outcome=str(doc.get("outcome") or ""),
            started=str(doc.get("started") or ""),
            error=doc.get("error"),
            report_interval=float(doc.get("reportIntervalSeconds") or 0.0),
            extra=doc.get("extra") or {},
        )

    def markdown(self, chart: str | None = None) -> str:
        """The report for people; ``chart`` is the PNG's file name, linked when given."""
        tl = self.timeline
        lines = [
            f"# Drill: {self.scenario} — {self.verdict.upper()}",
            "",
            self.title,
            "",
            f"- release `{self.namespace}/{self.release}`, {self.gateways} gateways, "
            f"started {self.started or '-'}",
            f"- outcome: {self.outcome or '-'}",
        ]
        if self.error:
            lines.append(f"- **the drill did not finish**: {self.error}")
        lines += [
            "",
            "| figure | value | target | result |",
            "| --- | --- | --- | --- |",
            f"| time to detect | {_secs(tl.time_to_detect)} | < {_secs(self.targets.detect)} "
            f"| {_mark(self.detect_ok)} |",
            f"| time to roll back | {_secs(tl.time_to_roll_back, 'not needed')} "
            f"| < {_secs(self.targets.roll_back)} | {_mark(self.roll_back_ok)} |",
            f"| time to recover | {_secs(tl.time_to_recover)} | | |",
            f"| gateways exposed to {tl.bad_version or 'a bad version'} | {len(tl.exposed)} | | |",
            "",
            "## Checks",
            "",
            *(f"- {_mark(c.ok)} {c.name}: {c.detail}" for c in self.checks),
            "",
            "## Timeline",
            "",
            "| t | event |",
            "| --- | --- |",
            *(f"| {m.at:.1f}s | {m.kind}: {m.label} |" for m in tl.marks),
        ]
        if chart:
            lines += ["", f"![gateways per version over time]({chart})"]
        return "\n".join(lines) + "\n"


def _secs(value: float | None, none: str = "-") -> str:
    if value is None:
        return none
    if value >= 120:
        return f"{value / 60:.1f} min"
    return f"{value:.1f}s"


def _mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def summary_json(reports: Sequence[Report]) -> dict[str, Any]:
    """``modelfleet drill all``: one row per scenario and the overall verdict."""
    return {
        "schema": SUMMARY_SCHEMA,
        "verdict": "pass" if reports and all(r.passed for r in reports) else "fail",
        "scenarios": [
            {
                "scenario": r.scenario,
                "verdict": r.verdict,
                "timeToDetectSeconds": r.timeline.time_to_detect,
                "timeToRollBackSeconds": r.timeline.time_to_roll_back,
                "gatewaysExposed": len(r.timeline.exposed),
                "outcome": r.outcome,
                "error": r.error,
                "report": f"{r.scenario}/report.json",
            }
            for r in reports
        ],
    }


def summary_markdown(reports: Sequence[Report]) -> str:
    overall = "PASS" if reports and all(r.passed for r in reports) else "FAIL"
    lines = [
        f"# Drill summary — {overall}",
        "",
        "| scenario | verdict | detect | roll back | exposed | outcome |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in reports:
        tl = r.timeline
        lines.append(
            f"| [{r.scenario}]({r.scenario}/report.md) | {r.verdict.upper()} "
            f"| {_secs(tl.time_to_detect)} | {_secs(tl.time_to_roll_back, 'not needed')} "
            f"| {len(tl.exposed)} | {r.error or r.outcome or '-'} |"
        )
    return "\n".join(lines) + "\n"
