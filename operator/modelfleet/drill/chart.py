"""The PNG timeline of a drill: gateways per version over time (stacked, each version its
colour, the bad version red), the marks (fault, first exposure, detection, recovery) as
vertical lines, and the figures against their targets underneath.

Drawn with Pillow's ``ImageDraw`` (the ``drill`` extra): a few rectangles and lines do not need
a plotting library, and Pillow is a ~4 MB wheel where matplotlib brings numpy, fonttools and
~40 MB more to a command-line tool.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from modelfleet.drill.report import Report, _secs
from modelfleet.drill.textimage import load_font
from modelfleet.drill.timeline import DETECTED, EXPOSED, FAULT, RECOVERED, Timeline

WIDTH, HEIGHT = 960, 520
LEFT, RIGHT, TOP, BOTTOM = 64, 200, 56, 150
BG, AXIS, GRID, TEXT = (255, 255, 255), (60, 60, 60), (225, 225, 225), (30, 30, 30)
BAD = (214, 39, 40)
PALETTE = ((44, 160, 44), (31, 119, 180), (255, 127, 14), (148, 103, 189), (140, 86, 75),
           (23, 190, 207), (127, 127, 127))  # fmt: skip
MARK_COLOURS = {FAULT: (120, 120, 120), EXPOSED: BAD, DETECTED: (255, 127, 14),
                RECOVERED: (44, 160, 44)}  # fmt: skip


def colours(tl: Timeline) -> dict[str, tuple[int, int, int]]:
    """A colour per version: the bad version red, the others from :data:`PALETTE` in order."""
    out: dict[str, tuple[int, int, int]] = {}
    others = iter(PALETTE * 4)
    for v in tl.versions:
        out[v] = BAD if v == tl.bad_version else next(others)
    return out


def render(report: Report, path: Path) -> Path:
    """Draw ``report``'s timeline to ``path`` (PNG)."""
    tl = report.timeline
    img = Image.new("RGB", (WIDTH, HEIGHT), BG)
    draw = ImageDraw.Draw(img)
    title, small, tiny = load_font(17), load_font(13), load_font(11)
    x0, y0, x1, y1 = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM
    end = max([s.at for s in tl.samples] + [m.at for m in tl.marks] + [1.0])
    top = max([report.gateways] + [sum(s.versions.values()) for s in tl.samples] + [1])

    def x(t: float) -> float:
        return x0 + (x1 - x0) * max(0.0, t) / end

    def y(n: float) -> float:
        return y1 - (y1 - y0) * n / top

    verdict = report.verdict.upper()
    draw.text((LEFT, 16), f"drill {report.scenario}: {verdict}", font=title,
              fill=BAD if verdict == "FAIL" else PALETTE[0])  # fmt: skip
    draw.text((LEFT + 300, 20), f"gateways per version, {report.gateways} gateways",
              font=small, fill=TEXT)  # fmt: skip
    for n in _ticks(top):  # grid and y labels
        draw.line((x0, y(n), x1, y(n)), fill=GRID)
        draw.text((x0 - 8, y(n)), str(n), font=tiny, fill=TEXT, anchor="rm")
    for t in _ticks(end):
        draw.text((x(t), y1 + 6), f"{t:g}s", font=tiny, fill=TEXT, anchor="mt")
    palette = colours(tl)
    for i, a in enumerate(tl.samples):
        right = x(tl.samples[i + 1].at) if i + 1 < len(tl.samples) else x(a.at) + 1
        base = 0
        for version in tl.versions:
            n = a.versions.get(version, 0)
            if n:
                draw.rectangle((x(a.at), y(base + n), right, y(base)), fill=palette[version])
                base += n
    draw.line((x0, y1, x1, y1), fill=AXIS, width=1)
    draw.line((x0, y0, x0, y1), fill=AXIS, width=1)
    for i, m in enumerate(tl.marks):
        colour = MARK_COLOURS.get(m.kind, AXIS)
        for yy in range(int(y0), int(y1), 8):  # dashed
            draw.line((x(m.at), yy, x(m.at), min(yy + 4, y1)), fill=colour, width=2)
        draw.text((x(m.at), y0 - 4), str(i + 1), font=tiny, fill=colour, anchor="mb")
    ly = TOP
    for version in tl.versions:  # legend
        draw.rectangle((x1 + 20, ly, x1 + 34, ly + 14), fill=palette[version])
        suffix = "  (bad)" if version == tl.bad_version else ""
        draw.text((x1 + 42, ly), f"{version}{suffix}", font=small, fill=TEXT)
        ly += 22
    ly = y1 + 28
    for i, m in enumerate(tl.marks):
        draw.text((LEFT, ly), f"{i + 1}  {m.at:5.1f}s  {m.kind}: {m.label}"[:120], font=tiny,
                  fill=MARK_COLOURS.get(m.kind, AXIS))  # fmt: skip
        ly += 15
        if ly > HEIGHT - 34:
            break
    goal = report.targets
    figures = (
        f"detect {_secs(tl.time_to_detect)} (< {_secs(goal.detect)}: "
        f"{'pass' if report.detect_ok else 'FAIL'})   roll back "
        f"{_secs(tl.time_to_roll_back, 'not needed')} (< {_secs(goal.roll_back)}: "
        f"{'pass' if report.roll_back_ok else 'FAIL'})   exposed {len(tl.exposed)}"
    )
    draw.text((LEFT, HEIGHT - 24), figures, font=small, fill=TEXT)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", optimize=True)
    return path


def _ticks(limit: float, most: int = 6) -> list[float]:
    """Round tick values from 0 to ``limit``: at most ``most`` + 1 of them."""
    step = 1.0
    for candidate in (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600):
        step = float(candidate)
        if limit / step <= most:
            break
    ticks, n = [], 0.0
    while n <= limit + 1e-9:
        ticks.append(int(n) if n == int(n) else n)
        n += step
    return ticks
