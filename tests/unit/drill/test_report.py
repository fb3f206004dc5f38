"""Readiness reports from fixed timelines: the figures, the verdict against targets, the JSON
and Markdown shapes, the summary, and the PNG chart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelfleet.drill.output import write_report, write_summary
from modelfleet.drill.report import SCHEMA, Check, Report, Targets
from modelfleet.drill.timeline import DETECTED, FAULT, NOTE, RECOVERED, Sample, Timeline

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def canary_timeline() -> Timeline:
    """5 gateways on 1.0.0; 2.0.0 reaches two canaries, aborted, both back."""
    tl = Timeline(bad_version="2.0.0")
    on_v1 = {f"gw-{i}": ("1.0.0", "Active") for i in range(5)}
    tl.observe(0.0, on_v1)
    tl.mark(0.5, FAULT, "release 2.0.0")
    tl.observe(1.0, {**on_v1, "gw-0": ("2.0.0", "Downloading")})
    tl.observe(2.0, {**on_v1, "gw-0": ("2.0.0", "Active"), "gw-1": ("2.0.0", "Active")})
    tl.mark(3.5, DETECTED, "Aborted: ErrorRateExceeded")
    tl.observe(4.0, {**on_v1, "gw-1": ("2.0.0", "Active")})
    tl.mark(5.0, RECOVERED, "every gateway back on 1.0.0")
    tl.observe(5.0, on_v1)
    return tl


TARGETS = Targets(detect=2.0)


def report(tl: Timeline, targets: Targets = TARGETS, **kw: object) -> Report:
    fields: dict[str, object] = {
        "scenario": "canary-regression",
        "title": "a regression",
        "namespace": "drill",
        "release": "canary-regression",
        "gateways": 5,
        "targets": targets,
        "timeline": tl,
        "checks": (Check("the rollout aborted", True, "Aborted"),),
        "outcome": "Aborted (ErrorRateExceeded)",
        "started": "2026-01-01T00:00:00Z",
    }
    fields.update(kw)
    return Report(**fields)  # type: ignore[arg-type]


def test_figures_count_from_the_first_gateway_running_the_bad_version() -> None:
    tl = canary_timeline()
    assert tl.first("exposed") == 2.0  # Active at 2.0 (the download at 1.0 is exposure only)
    assert tl.time_to_detect == 1.5
    assert tl.time_to_roll_back == 1.5
    assert tl.time_to_recover == 4.5
    assert tl.exposed == {"gw-0", "gw-1"}
    assert [s.versions for s in tl.samples][2] == {"1.0.0": 3, "2.0.0": 2}


def test_without_exposure_detection_counts_from_the_fault_and_nothing_is_rolled_back() -> None:
    tl = Timeline(bad_version="2.0.0")
    tl.mark(1.0, FAULT, "release 2.0.0 signed by an untrusted key")
    tl.observe(1.5, {"gw-0": ("1.0.0", "Active")})
    tl.mark(2.2, DETECTED, "Rejected")
    tl.mark(2.2, RECOVERED, "fleet still on 1.0.0")
    r = report(tl)
    assert tl.time_to_detect == pytest.approx(1.2)
    assert tl.time_to_roll_back is None
    assert r.roll_back_ok and r.detect_ok and r.passed
    assert r.to_json()["gatewaysExposed"] == 0
    assert "| time to roll back | not needed |" in r.markdown()


def test_gateways_on_the_bad_version_before_the_fault_are_not_exposed() -> None:
    tl = Timeline(bad_version="1.0.0")
    tl.observe(0.0, {"gw-0": ("1.0.0", "Active")})
    assert tl.exposed == set() and tl.first("exposed") is None


def test_verdict_fails_on_a_missed_target_a_failed_check_or_an_error() -> None:
    tl = canary_timeline()
    assert report(tl).passed
    assert not report(tl, Targets(detect=1.0)).passed
    assert not report(tl, Targets(detect=2.0, roll_back=1.0)).passed
    assert not report(tl, checks=(Check("back on 1.0.0", False, "2.0.0 Active 1"),)).passed
    assert not report(tl, error="not recovered within 120s").passed


def test_never_detected_fails_the_detect_target() -> None:
    tl = Timeline(bad_version="2.0.0")
    tl.mark(0.0, FAULT, "release")
    r = report(tl, Targets(detect=3600.0))
    assert tl.time_to_detect is None and not r.detect_ok and r.verdict == "fail"


def test_marks_other_than_notes_are_recorded_once() -> None:
    tl = Timeline()
    tl.mark(1.0, FAULT, "first")
    tl.mark(2.0, FAULT, "again")
    tl.mark(3.0, NOTE, "a")
    tl.mark(4.0, NOTE, "b")
    assert [(m.at, m.kind) for m in tl.marks] == [(1.0, FAULT), (3.0, NOTE), (4.0, NOTE)]
    with pytest.raises(ValueError, match="unknown mark kind"):
        tl.mark(5.0, "exploded", "?")


def test_json_has_the_documented_fields_and_round_trips() -> None:
    r = report(canary_timeline())
    doc = r.to_json()
    assert doc["schema"] == SCHEMA
    for key in ("scenario", "verdict", "timeToDetectSeconds", "timeToRollBackSeconds",
                "timeToRecoverSeconds", "gatewaysExposed", "badVersion", "targets", "checks",
                "timeline", "outcome", "started", "error"):  # fmt: skip
        assert key in doc, key
    assert doc["targets"] == {"detectSeconds": 2.0, "rollBackSeconds": 900.0,
                              "detect": "pass", "rollBack": "pass"}  # fmt: skip
    again = Report.from_json(json.loads(json.dumps(doc)))
    assert again.to_json() == doc


def test_markdown_states_verdict_figures_checks_and_marks() -> None:
    md = report(canary_timeline()).markdown(chart="timeline.png")
    assert md.startswith("# Drill: canary-regression — PASS")
    assert "| time to detect | 1.5s | < 2.0s | PASS |" in md
    assert "| time to roll back | 1.5s | < 15.0 min | PASS |" in md
    assert "| gateways exposed to 2.0.0 | 2 | | |" in md
    assert "- PASS the rollout aborted: Aborted" in md
    assert "| 3.5s | detected: Aborted: ErrorRateExceeded |" in md
    assert "![gateways per version over time](timeline.png)" in md


def test_written_report_and_summary(tmp_path: Path) -> None:
    good = report(canary_timeline())
    bad = report(canary_timeline(), scenario="operator-crash", error="operator did not start")
    paths = write_report(good, tmp_path / "canary-regression")
    assert paths["png"].read_bytes().startswith(PNG_MAGIC)
    assert json.loads(paths["json"].read_text())["verdict"] == "pass"
    summary = write_summary([good, bad], tmp_path)
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["verdict"] == "fail"
    assert [(s["scenario"], s["verdict"]) for s in doc["scenarios"]] == [
        ("canary-regression", "pass"), ("operator-crash", "fail")]  # fmt: skip
    text = summary.read_text()
    assert text.startswith("# Drill summary — FAIL")
    assert "| [operator-crash](operator-crash/report.md) | FAIL |" in text
    assert "operator did not start" in text


def test_chart_renders_an_empty_timeline(tmp_path: Path) -> None:
    from modelfleet.drill import chart

    path = chart.render(report(Timeline()), tmp_path / "empty.png")
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_sample_keeps_the_release_fields() -> None:
    tl = Timeline()
    tl.observe(1.0, {"gw-0": ("1.0.0", "Active")}, Sample(0.0, {}, "Progressing", "GatesHeld", 0))
    s = tl.samples[0]
    assert (s.at, s.phase, s.reason, s.step, dict(s.versions)) == (
        1.0, "Progressing", "GatesHeld", 0, {"1.0.0": 1})  # fmt: skip


def test_a_version_revoked_while_running_is_exposed_from_the_fault() -> None:
    tl = Timeline(bad_version="1.0.0")
    tl.observe(0.0, {"gw-0": ("1.0.0", "Active"), "gw-1": ("1.0.0", "Active")})
    tl.mark(1.0, FAULT, "TrustPolicy revokes 1.0.0")
    tl.observe(1.6, {"gw-0": ("1.0.0", "Active"), "gw-1": ("1.0.0", "Active")})
    tl.mark(1.8, DETECTED, "StableRevoked")
    tl.observe(9.0, {"gw-0": ("3.0.0", "Active"), "gw-1": ("3.0.0", "Active")})
    tl.mark(9.0, RECOVERED, "every gateway on 3.0.0")
    assert tl.first("exposed") == 1.0
    assert tl.time_to_detect == pytest.approx(0.8)
    assert tl.time_to_roll_back == pytest.approx(7.2)
    assert tl.exposed == {"gw-0", "gw-1"}
