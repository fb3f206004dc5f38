"""SIGKILL at random instants: ``active`` always names a fully verified model, and start-up
recovery restores a clean data dir from whatever the kill left."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from modelfleet.agent.protocol import DesiredModel
from modelfleet.agent.slots import ModelSlots
from modelfleet.agent.state import StateStore
from modelfleet.trust import digest_file

from .helpers import desired, versions

ROOT = Path(__file__).resolve().parents[3]


def assert_active_is_verified(data: Path, known: set[str]) -> str | None:
    """What a reader of the data dir sees right now (no repair first)."""
    slots = ModelSlots(data / "detector", "detector")
    if not slots.active_link.is_symlink():
        return None
    slot = slots.active_slot()
    assert slot is not None, "active points outside the slots"
    marker = slots.marker(slot)
    assert marker is not None, f"active slot {slot} has no verified marker"
    assert marker.digest in known
    files = list((slots.active_link / marker.model_path).iterdir())
    assert len(files) == 1 and digest_file(files[0]) == marker.digest
    return marker.version


def test_sigkill_at_random_instants_never_leaves_an_unverified_model_active(
    tmp_path: Path,
) -> None:
    v = versions(tmp_path, "1.0", "2.0", "3.0", "4.0")
    models: list[DesiredModel] = [desired(s, name) for name, s in v.items()]
    spec = tmp_path / "desired.json"
    spec.write_text(json.dumps([dataclasses.asdict(m) for m in models]))
    data = tmp_path / "data"
    known = {m.digest for m in models}
    rng = random.Random(1234)
    seen: set[str | None] = set()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for n in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.unit.agent.killtarget", str(data),
             str(v["1.0"].policy_path), str(spec)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        if n % 2:  # half of the kills after at least one completed install
            assert proc.stdout.readline().startswith("round")
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seen.add(assert_active_is_verified(data, known))
        store = StateStore(data, "gw-1")
        store.load()  # never a torn file: readable, or absent
        if (data / "state.json").exists():
            assert json.loads((data / "state.json").read_text())["formatVersion"] == 1
        ModelSlots(data / "detector", "detector").recover()
        assert assert_active_is_verified(data, known) in seen
        slots = ModelSlots(data / "detector", "detector")
        for slot in ("A", "B"):
            if slots.marker(slot) is None:  # after recovery: only resumable downloads stay
                leftovers = list(slots.slot_dir(slot).iterdir())
                assert all(p.name.endswith(".part") for p in leftovers), leftovers
    assert seen - {None}, "the loop never got a model active before being killed"
