"""Writing reports: ``report.json``, ``report.md`` and ``timeline.png`` per scenario, and
``summary.json`` / ``summary.md`` for several."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from modelfleet.drill import chart
from modelfleet.drill.report import Report, summary_json, summary_markdown

CHART = "timeline.png"


def write_report(report: Report, folder: Path) -> dict[str, Path]:
    """The three files of one report in ``folder``; their paths by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": folder / "report.json",
        "md": folder / "report.md",
        "png": folder / CHART,
    }
    paths["json"].write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    paths["md"].write_text(report.markdown(chart=CHART), encoding="utf-8")
    chart.render(report, paths["png"])
    return paths


def write_summary(reports: Sequence[Report], folder: Path) -> Path:
    """``summary.json`` and ``summary.md`` in ``folder``; the Markdown's path."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = summary_json(reports)
    (folder / "summary.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    md = folder / "summary.md"
    md.write_text(summary_markdown(reports), encoding="utf-8")
    return md
