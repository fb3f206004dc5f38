"""What a drill saw, over time: samples of the fleet (gateways per version) and marks (the fault,
the first exposure, the detection, the recovery), and the three figures a readiness report is
judged on. Pure: the runner feeds it what the API server says, with seconds since the drill began.

The figures:

* **time to detect**: from the moment the fault could first be seen (the first gateway running
  the bad version, ``Active``; or the injection itself when no gateway ever ran it) to the
  moment the system acted on it (Rejected, Aborted, held, ...: the scenario's ``detected`` mark);
* **time to roll back**: from the detection to the moment no gateway runs the bad version any
  more (the ``recovered`` mark); none when no gateway was exposed;
* **time to recover**: from the fault to the ``recovered`` mark (the fleet settled and safe);
* **gateways exposed**: distinct gateways that reported the bad version, in any state (even a
  download that never activated), after the fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

FAULT, EXPOSED, DETECTED, RECOVERED, NOTE = "fault", "exposed", "detected", "recovered", "note"
MARK_KINDS = (FAULT, EXPOSED, DETECTED, RECOVERED, NOTE)
ACTIVE = "Active"


class Sample(NamedTuple):
    """The fleet at ``at`` seconds: gateways per version (any state), and the release."""

    at: float
    versions: Mapping[str, int]
    phase: str | None = None
    reason: str | None = None
    step: int | None = None


class Mark(NamedTuple):
    """Something that happened at ``at`` seconds (``kind`` one of :data:`MARK_KINDS`)."""

    at: float
    kind: str
    label: str


@dataclass
class Timeline:
    """Samples and marks of one drill; ``bad_version`` is what must not spread (if any)."""

    bad_version: str | None = None
    samples: list[Sample] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    exposed: set[str] = field(default_factory=set)
    _before: set[str] = field(default_factory=set, repr=False)  # on it before the fault

    def mark(self, at: float, kind: str, label: str) -> None:
        """Record a mark; ``fault``, ``exposed``, ``detected``, ``recovered`` only once each."""
        if kind not in MARK_KINDS:
            raise ValueError(f"unknown mark kind {kind!r}")
        if kind != NOTE and self.first(kind) is not None:
            return
        self.marks.append(Mark(round(at, 3), kind, label))

    def observe(
        self, at: float, states: Mapping[str, tuple[str, str]], sample: Sample | None = None
    ) -> None:
        """One look at the fleet: ``states`` is gateway -> (version, state). Gateways on the bad
        version after the fault, in any state, count as exposed; the first one that runs it
        (``Active``) is the ``exposed`` mark, from which the time to detect is counted."""
        counts: dict[str, int] = {}
        for version, _ in states.values():
            counts[version] = counts.get(version, 0) + 1
        fault = self.first(FAULT)
        on_bad = {gw for gw, (v, _) in states.items() if v == self.bad_version}
        if self.bad_version is not None and fault is not None and at >= fault:
            if any(states[gw][1] == ACTIVE for gw in on_bad):
                # a version turned bad while gateways ran it (revoked): exposed from the fault
                when = fault if on_bad & self._before else at
                self.mark(when, EXPOSED, f"first gateway running {self.bad_version}")
            self.exposed |= on_bad
        elif fault is None:
            self._before |= on_bad
        base = sample or Sample(at, {})
        self.samples.append(Sample(round(at, 3), counts, base.phase, base.reason, base.step))

    def first(self, kind: str) -> float | None:
        return next((m.at for m in self.marks if m.kind == kind), None)

    # ----------------------------------------------------------------- figures
    @property
    def time_to_detect(self) -> float | None:
        detected = self.first(DETECTED)
        start = self.first(EXPOSED)
        if start is None or (detected is not None and start > detected):
            start = self.first(FAULT)
        if detected is None or start is None:
            return None
        return round(max(0.0, detected - start), 3)

    @property
    def time_to_roll_back(self) -> float | None:
        detected, recovered = self.first(DETECTED), self.first(RECOVERED)
        if not self.exposed or detected is None or recovered is None:
            return None
        return round(max(0.0, recovered - detected), 3)

    @property
    def time_to_recover(self) -> float | None:
        fault, recovered = self.first(FAULT), self.first(RECOVERED)
        if fault is None or recovered is None:
            return None
        return round(max(0.0, recovered - fault), 3)

    @property
    def versions(self) -> list[str]:
        """Every version seen, in order of first appearance."""
        seen: dict[str, None] = {}
        for s in self.samples:
            for v in s.versions:
                seen.setdefault(v, None)
        return list(seen)

    def to_json(self) -> dict[str, object]:
        return {
            "badVersion": self.bad_version,
            "samples": [
                {
                    "at": s.at,
                    "versions": dict(s.versions),
                    "phase": s.phase,
                    "reason": s.reason,
                    "step": s.step,
                }
                for s in self.samples
            ],
            "marks": [{"at": m.at, "kind": m.kind, "label": m.label} for m in self.marks],
            "exposedGateways": sorted(self.exposed),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, object]) -> Timeline:
        """The inverse of :meth:`to_json` (reports are re-rendered from their JSON)."""
        samples = doc.get("samples") or []
        marks = doc.get("marks") or []
        exposed = doc.get("exposedGateways") or []
        assert isinstance(samples, list) and isinstance(marks, list)
        assert isinstance(exposed, list)
        bad = doc.get("badVersion")
        return cls(
            bad_version=str(bad) if bad is not None else None,
            samples=[
                Sample(
                    float(s["at"]),
                    {str(k): int(v) for k, v in s["versions"].items()},
                    s.get("phase"),
                    s.get("reason"),
                    s.get("step"),
                )
                for s in samples
            ],
            marks=[Mark(float(m["at"]), str(m["kind"]), str(m["label"])) for m in marks],
            exposed={str(g) for g in exposed},
        )
