"""The images of docs/operations.md, rendered from inputs committed beside them
(``make docs-images``, i.e. ``python -m modelfleet.drill.docimages docs/img``):

* ``status-example.json`` -> ``status.png``: a ModelRelease and its Events as the API server
  returned them during a real drill (``{"release": ..., "events": [...], "at": RFC 3339}``),
  drawn as ``modelfleet status`` prints it at ``at``;
* ``drill-<scenario>.json`` -> ``drill-<scenario>.png``: a real drill's ``report.json``, drawn
  as the drill draws its timeline.

The same inputs give the same images on any machine with the same fonts (DejaVu from
``fonts-dejavu-core`` when installed, else Pillow's default font).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from modelfleet.api.statusview import release_view, render
from modelfleet.drill import chart
from modelfleet.drill.report import Report
from modelfleet.drill.textimage import text_to_png

STATUS_INPUT = "status-example.json"


def status_image(source: Path, out: Path) -> Path:
    doc = json.loads(source.read_text(encoding="utf-8"))
    now = datetime.fromisoformat(str(doc["at"]).replace("Z", "+00:00"))
    release = doc["release"]
    view = release_view(release, doc.get("events") or [], limit=6)
    meta = release.get("metadata") or {}
    title = f"modelfleet status {meta.get('name')} -n {meta.get('namespace')}"
    return text_to_png(render(view, now=now), out, title=title)


def drill_image(source: Path, out: Path) -> Path:
    report = Report.from_json(json.loads(source.read_text(encoding="utf-8")))
    return chart.render(report, out)


def render_all(folder: Path) -> list[Path]:
    """Every image of ``folder`` from its inputs; the paths written."""
    written = []
    if (folder / STATUS_INPUT).is_file():
        written.append(status_image(folder / STATUS_INPUT, folder / "status.png"))
    for source in sorted(folder.glob("drill-*.json")):
        written.append(drill_image(source, source.with_suffix(".png")))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modelfleet.drill.docimages", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("folder", type=Path, help="where the inputs are and the images go")
    args = parser.parse_args(argv)
    try:
        written = render_all(args.folder)
    except (OSError, ValueError, KeyError) as exc:
        print(f"docimages: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0 if written else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
