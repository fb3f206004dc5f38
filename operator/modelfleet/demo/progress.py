"""Live progress of a rollout for a person watching: per-cohort bars redrawn in place on a
terminal, plain periodic lines otherwise (CI logs, pipes, tests).

This module owns presentation only; it is fed :class:`~modelfleet.demo.watch.FleetView`
snapshots and writes to a text stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from modelfleet.demo.watch import CohortView, FleetView, ReleaseView

BAR_WIDTH = 24


def _bar(done: int, failed: int, total: int, width: int, chars: tuple[str, str, str]) -> str:
    full, bad, empty = chars
    if total <= 0:
        return empty * width
    n_done = round(width * done / total)
    n_bad = min(width - n_done, round(width * failed / total))
    return full * n_done + bad * n_bad + empty * (width - n_done - n_bad)


def release_line(r: ReleaseView) -> str:
    """``Progressing · step 2/3 early · gates GatesHeld`` (or what exists so far)."""
    if not r.exists:
        return "waiting for the sync to create the ModelRelease"
    if not r.phase:
        return f"ModelRelease {r.spec_version}: waiting for the operator"
    parts = [r.phase]
    if r.phase in ("Progressing", "Paused") and r.step is not None:
        parts.append(f"step {r.step + 1}/{len(r.steps)} {r.step_name or ''}".rstrip())
    if r.target and r.phase in ("Progressing", "Paused"):
        parts.append(f"target {r.target}")
    if r.stable:
        parts.append(f"stable {r.stable}")
    if r.gate_reason and r.phase in ("Progressing", "Paused", "Aborted"):
        gate = f"gates {r.gate_reason}"
        if r.error_rate is not None:
            gate += f" (error rate {r.error_rate:.1%})"
        parts.append(gate)
    return " · ".join(parts)


def cohort_label(c: CohortView, index: int, step: int | None) -> str:
    if step is not None and index > step:
        return "waiting"
    extra = f", {c.failed} failed" if c.failed else ""
    return f"{c.active}/{c.assigned} active, {c.reporting} reporting{extra}"


class ProgressPrinter:
    """Draws :class:`FleetView` snapshots on ``out``."""

    def __init__(self, out: TextIO, *, tty: bool, interval: float = 5.0) -> None:
        self.out = out
        self.tty = tty
        self.interval = interval
        self._drawn = 0
        self._last_key: tuple[object, ...] | None = None
        self._last_at = -1e9
        encoding = (getattr(out, "encoding", None) or "").lower()
        self._chars = ("█", "▒", "░") if "utf" in encoding else ("#", "x", "-")

    def say(self, text: str = "") -> None:
        """A narration line, printed above the live block (which is then redrawn anew)."""
        self._forget()
        self.out.write(text + "\n")
        self.out.flush()

    def update(self, view: FleetView, elapsed: float) -> None:
        if self.tty:
            self._draw(self._block(view, elapsed))
            return
        r = view.release
        key = (r.phase, r.step, r.gate_reason, r.target, r.stable)
        if key != self._last_key or elapsed - self._last_at >= self.interval:
            self._last_key, self._last_at = key, elapsed
            self.out.write(self._line(view, elapsed) + "\n")
            self.out.flush()

    def finish(self, view: FleetView, elapsed: float) -> None:
        """The final state of an act, left on screen."""
        if self.tty:
            self._draw(self._block(view, elapsed))
            self._drawn = 0
        else:
            self.out.write(self._line(view, elapsed) + "\n")
            self.out.flush()
        self._last_key = None

    # ----------------------------------------------------------------- rendering
    def _line(self, view: FleetView, elapsed: float) -> str:
        r = view.release
        cohorts = ", ".join(f"{c.name} {c.active}/{c.assigned}" for c in r.cohorts)
        parts = [f"  [{elapsed:5.1f}s] {release_line(r)}"]
        if cohorts and r.target:
            parts.append(f"cohorts {cohorts}")
        parts.append(f"gateways: {view.versions_line()}")
        return " | ".join(parts)

    def _block(self, view: FleetView, elapsed: float) -> list[str]:
        r = view.release
        lines = [f"  {elapsed:5.1f}s  {release_line(r)}"]
        if r.target and r.cohorts:
            width = max(len(c.name) for c in r.cohorts)
            for i, c in enumerate(r.cohorts):
                bar = _bar(c.active, c.failed, c.assigned, BAR_WIDTH, self._chars)
                label = cohort_label(c, i, r.step)
                lines.append(f"    {c.name:<{width}}  {bar}  {label}")
        lines.append(f"    gateways: {view.versions_line()}")
        return lines

    def _draw(self, lines: Sequence[str]) -> None:
        out = self.out
        if self._drawn:
            out.write(f"\x1b[{self._drawn}F")  # to the start of the block
        for line in lines:
            out.write("\x1b[2K" + line + "\n")
        for _ in range(self._drawn - len(lines)):  # a shorter block: clear what is left
            out.write("\x1b[2K\n")
        extra = max(0, self._drawn - len(lines))
        if extra:
            out.write(f"\x1b[{extra}F")
        self._drawn = len(lines)
        out.flush()

    def _forget(self) -> None:
        """Keep what is on screen; the next update starts a new block below."""
        self._drawn = 0
