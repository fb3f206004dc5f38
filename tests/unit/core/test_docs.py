"""docs/rollout.md describes the machine as implemented: its transition table is TRANSITIONS."""

from __future__ import annotations

import re
from pathlib import Path

from modelfleet.core import TRANSITIONS, Phase

DOC = Path(__file__).resolve().parents[3] / "docs" / "rollout.md"


def _section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_documented_transitions_are_the_table() -> None:
    rows = re.findall(r"^\| (\w+) \| (\w+) \|", _section("Transitions"), flags=re.M)
    documented = {(Phase(a), Phase(b)) for a, b in rows if a != "From"}
    assert documented == {(s, d) for s, dests in TRANSITIONS.items() for d in dests}


def test_every_phase_is_documented() -> None:
    rows = re.findall(r"^\| `(\w+)` \|", _section("Phases"), flags=re.M)
    assert rows == [p.value for p in Phase]
