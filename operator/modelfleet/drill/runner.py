"""Running drills: :func:`run_drills` sets up the shared stack, opens a lane per scenario, rolls
the stable version out on all lanes at once, then runs the scenarios one after the other, each
watched through the API server (:func:`run_scenario`) and written as a report.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelfleet.demo.models import ModelArtifact
from modelfleet.demo.progress import ProgressPrinter
from modelfleet.demo.watch import FleetView
from modelfleet.drill.fleet import DrillFleet, Lane, PreflightError
from modelfleet.drill.output import write_report, write_summary
from modelfleet.drill.report import Report, Targets
from modelfleet.drill.scenario import V1, Scenario
from modelfleet.drill.timeline import DETECTED, FAULT, RECOVERED, Sample, Timeline
from modelfleet.errors import ModelfleetError

LOOK_EVERY = 0.3  # seconds between two looks at the fleet
TAIL = 1.0  # seconds still sampled after recovery (the end of the chart)


class Run:
    """One scenario in progress: what the scenario's hooks may use."""

    def __init__(
        self, fleet: DrillFleet, lane: Lane, scenario: Scenario, printer: ProgressPrinter
    ) -> None:
        self.fleet = fleet
        self.lane = lane
        self.scenario = scenario
        self.printer = printer
        self.timeline = Timeline(bad_version=scenario.bad_version)
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def mark(self, kind: str, label: str) -> None:
        before = len(self.timeline.marks)
        self.timeline.mark(self.now(), kind, label)
        if len(self.timeline.marks) > before:
            self.printer.say(f"  {self.now():6.1f}s  {kind}: {label}")

    def release(self, artifact: ModelArtifact | Mapping[str, Any], version: str) -> None:
        self.fleet.release(self.lane, artifact, version)

    def observe(self, view: FleetView) -> None:
        r = view.release
        sample = Sample(0.0, {}, r.phase, r.gate_reason or r.reason, r.step)
        self.timeline.observe(self.now(), view.states, sample)


def run_scenario(
    fleet: DrillFleet, lane: Lane, scenario: Scenario, targets: Targets, printer: ProgressPrinter
) -> Report:
    """Inject the fault, watch until recovery (or the timeout), and judge."""
    observer = fleet.observer(lane)
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    run = Run(fleet, lane, scenario, printer)
    error: str | None = None
    view = observer.snapshot()
    run.observe(view)
    try:
        scenario.inject(run)
        tail_until: float | None = None
        while tail_until is None or run.now() < tail_until:
            fleet.check()
            view = observer.snapshot()
            run.observe(view)
            scenario.tick(run, view)
            tl = run.timeline
            if tl.first(FAULT) is not None and tl.first(DETECTED) is None:
                label = scenario.detected(run, view)
                if label:
                    run.mark(DETECTED, label)
            if tl.first(DETECTED) is not None and tl.first(RECOVERED) is None:
                label = scenario.recovered(run, view)
                if label:
                    run.mark(RECOVERED, label)
                    tail_until = run.now() + TAIL
            printer.update(view, run.now())
            if tail_until is None and run.now() > fleet.settings.timeout:
                r = view.release
                error = (
                    f"not recovered within {fleet.settings.timeout:.0f}s: {r.phase} "
                    f"({r.gate_reason or r.reason}), gateways {view.versions_line()}"
                )
                break
            time.sleep(LOOK_EVERY)
    except (ModelfleetError, OSError) as exc:
        error = str(exc)
    printer.finish(view, run.now())
    r = view.release
    return Report(
        scenario=scenario.name,
        title=scenario.summary,
        namespace=fleet.namespace,
        release=lane.name,
        gateways=len(lane.gateways),
        targets=targets,
        timeline=run.timeline,
        checks=tuple(scenario.checks(run, view)),
        outcome=f"{r.phase} ({r.gate_reason or r.reason})" if r.phase else "",
        started=started,
        error=error,
        report_interval=fleet.settings.report_interval,
    )


def run_drills(
    fleet: DrillFleet,
    scenarios: Sequence[Scenario],
    targets: Targets,
    out: Path,
    printer: ProgressPrinter,
) -> list[Report]:
    """Every scenario on one stack; reports under ``out/<scenario>/``, the summary (when more
    than one) in ``out``. The cluster objects the drill made are removed at the end."""
    say = printer.say
    reports: list[Report] = []
    try:
        t = time.monotonic()
        fleet.setup()
        refused = [line for s in scenarios if (line := s.refusal(fleet))]
        if refused:
            raise PreflightError(refused)
        lanes = [
            fleet.open_lane(s.name, s.prefix, s.behaviour, s.groups, s.progress_deadline)
            for s in scenarios
        ]
        fleet.start_operator()  # while the gateways enroll
        fleet.ready(lanes)
        total = sum(len(lane.gateways) for lane in lanes)
        say(
            f"stack ready in {time.monotonic() - t:.1f}s: fleet API {fleet.stack.fleet_url}, "
            f"{'the deployed ' if fleet.deployed else ''}operator, {total} simulated gateways, "
            f"namespace {fleet.namespace} "
            f"(logs in {fleet.stack.workdir / 'logs'})"
        )
        t = time.monotonic()
        say(f"rolling out the stable {V1} on every lane")
        fleet.baseline(lanes, V1)
        say(f"stable {V1} everywhere ({time.monotonic() - t:.1f}s)")
        for i, (scenario, lane) in enumerate(zip(scenarios, lanes, strict=True)):
            say(f"\n[{i + 1}/{len(scenarios)}] {scenario.name}: {scenario.summary}")
            report = run_scenario(fleet, lane, scenario, targets, printer)
            paths = write_report(report, out / scenario.name)
            reports.append(report)
            say(_verdict_line(report, paths["md"]))
            fleet.close_lane(lane)
    finally:
        with contextlib.suppress(Exception):
            fleet.delete_trust_policies()
        fleet.close()
    if len(reports) > 1:
        path = write_summary(reports, out)
        say(f"\nsummary: {path}")
    return reports


def _verdict_line(report: Report, path: Path) -> str:
    tl = report.timeline
    failed = [c.name for c in report.checks if not c.ok]
    parts = [
        f"  => {report.verdict.upper()}",
        f"detect {_fmt(tl.time_to_detect)}",
        f"roll back {_fmt(tl.time_to_roll_back)}",
        f"exposed {len(tl.exposed)}",
    ]
    if report.error:
        parts.append(f"error: {report.error}")
    if failed:
        parts.append("failed: " + "; ".join(failed))
    return " · ".join(parts) + f"\n     report {path}"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"
