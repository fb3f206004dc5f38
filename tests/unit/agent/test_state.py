"""state.json: round trip, atomic replacement, and tolerance of a damaged file."""

from __future__ import annotations

import json
from pathlib import Path

from modelfleet.agent.protocol import ModelState
from modelfleet.agent.state import FailedTarget, ModelRecord, StateStore


def test_records_round_trip_through_the_file(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "gw-1")
    rec = ModelRecord(
        version="2.0",
        digest="sha256:" + "a" * 64,
        slot="B",
        state=ModelState.ROLLED_BACK,
        message="probe failed",
        since="2025-01-01T00:00:00Z",
        healthy={"A": "sha256:" + "b" * 64},
        failed=FailedTarget("sha256:" + "a" * 64, "2.0", ModelState.ROLLED_BACK, "probe", "p"),
    )
    store.put("detector", rec)
    again = StateStore(tmp_path, "gw-1")
    again.load()
    assert again.get("detector") == rec


def test_missing_file_means_no_models(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "gw-1")
    store.load()
    assert store.models == {}
    assert store.get("x") == ModelRecord()


def test_corrupt_file_is_ignored_with_a_warning(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "state.json").write_text("{not json")
    store = StateStore(tmp_path, "gw-1")
    store.load()
    assert store.models == {}
    assert "gw-1" in caplog.text and "ignoring unreadable" in caplog.text


def test_every_update_is_written_before_returning_and_leaves_no_temporaries(
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path, "gw-1")
    for i in range(5):
        store.update("detector", version=str(i), state=ModelState.ACTIVE)
    doc = json.loads((tmp_path / "state.json").read_text())
    assert doc["models"]["detector"]["version"] == "4"
    assert doc["gateway"] == "gw-1"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
