"""A/B slots on disk: the activation invariant, atomic writes, and crash recovery."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelfleet.agent.slots import Marker, ModelSlots, SlotError, atomic_write

DIGEST_1 = "sha256:" + "1" * 64
DIGEST_2 = "sha256:" + "2" * 64


def install(slots: ModelSlots, slot: str, digest: str, version: str = "1") -> None:
    d = slots.prepare(slot)
    (d / "model").mkdir()
    (d / "model" / "w.bin").write_bytes(version.encode())
    slots.write_marker(slot, Marker(digest=digest, version=version, model_path="model"))


@pytest.fixture
def slots(tmp_path: Path) -> ModelSlots:
    s = ModelSlots(tmp_path / "detector", "detector")
    s.ensure()
    return s


def test_activate_points_the_link_at_the_slot(slots: ModelSlots) -> None:
    install(slots, "A", DIGEST_1)
    slots.activate("A", DIGEST_1)
    assert os.readlink(slots.active_link) == "slots/A"
    assert slots.active_model_path() == slots.active_link / "model"


def test_activate_refuses_a_slot_without_marker(slots: ModelSlots) -> None:
    d = slots.prepare("A")
    (d / "model").mkdir()
    with pytest.raises(SlotError, match="not verified"):
        slots.activate("A", DIGEST_1)
    assert slots.active_slot() is None


def test_activate_refuses_a_marker_for_another_digest(slots: ModelSlots) -> None:
    install(slots, "A", DIGEST_1)
    with pytest.raises(SlotError, match=DIGEST_2):
        slots.activate("A", DIGEST_2)


def test_prepare_refuses_the_active_slot(slots: ModelSlots) -> None:
    install(slots, "A", DIGEST_1)
    slots.activate("A", DIGEST_1)
    with pytest.raises(SlotError, match="active slot A"):
        slots.prepare("A")
    with pytest.raises(SlotError):
        slots.write_marker("A", Marker(digest=DIGEST_2, version="2", model_path="model"))


def test_prepare_removes_the_marker_and_keeps_the_named_partial(slots: ModelSlots) -> None:
    install(slots, "B", DIGEST_1)
    (slots.slot_dir("B") / "artifact.x.part").write_bytes(b"half")
    slots.prepare("B", keep_part="artifact.x.part")
    assert slots.marker("B") is None
    assert [p.name for p in slots.slot_dir("B").iterdir()] == ["artifact.x.part"]


def test_swap_replaces_the_link_in_one_step(slots: ModelSlots) -> None:
    install(slots, "A", DIGEST_1, "1")
    install(slots, "B", DIGEST_2, "2")
    slots.activate("A", DIGEST_1)
    slots.activate("B", DIGEST_2)
    assert slots.active_slot() == "B"
    assert not [p for p in slots.root.iterdir() if p.name.endswith(".tmp")]


def test_marker_naming_a_missing_model_is_ignored(slots: ModelSlots) -> None:
    install(slots, "A", DIGEST_1)
    (slots.slot_dir("A") / "model" / "w.bin").unlink()
    (slots.slot_dir("A") / "model").rmdir()
    assert slots.marker("A") is None


def test_recover_removes_leftover_temporaries(slots: ModelSlots) -> None:
    install(slots, "A", DIGEST_1)
    slots.activate("A", DIGEST_1)
    os.symlink("slots/B", slots.root / ".active.dead.tmp")
    (slots.slot_dir("B") / ".x.tmp").write_bytes(b"")
    slots.recover()
    assert sorted(p.name for p in slots.root.iterdir()) == ["active", "slots"]
    assert not list(slots.slot_dir("B").iterdir())


def test_recover_empties_an_unverified_inactive_slot_but_keeps_partial_downloads(
    slots: ModelSlots,
) -> None:
    install(slots, "A", DIGEST_1)
    slots.activate("A", DIGEST_1)
    b = slots.slot_dir("B")
    (b / "model").mkdir()
    (b / "model" / "half-unpacked").write_bytes(b"x")
    (b / "artifact.abc.part").write_bytes(b"resume me")
    done = slots.recover()
    assert "emptied unverified slot B" in done
    assert [p.name for p in b.iterdir()] == ["artifact.abc.part"]
    assert slots.active_slot() == "A"


def test_recover_keeps_a_verified_inactive_slot_for_rollback(slots: ModelSlots) -> None:
    install(slots, "A", DIGEST_1)
    install(slots, "B", DIGEST_2)
    slots.activate("A", DIGEST_1)
    assert slots.recover() == []
    assert slots.marker("B") is not None


def test_recover_switches_away_from_an_active_slot_without_marker(slots: ModelSlots) -> None:
    install(slots, "A", DIGEST_1)
    install(slots, "B", DIGEST_2)
    slots.activate("B", DIGEST_2)
    (slots.slot_dir("B") / ".verified").unlink()  # damaged from outside
    slots.recover()
    assert slots.active_slot() == "A"


def test_recover_removes_an_active_link_when_nothing_is_verified(slots: ModelSlots) -> None:
    os.symlink("slots/A", slots.active_link)
    slots.recover()
    assert not slots.active_link.is_symlink()


def test_recover_removes_a_foreign_active_link(slots: ModelSlots) -> None:
    os.symlink("/etc", slots.active_link)
    slots.recover()
    assert not slots.active_link.is_symlink()


def test_atomic_write_keeps_the_old_content_when_the_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    atomic_write(path, b"old")

    def broken(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_atomic_write_replaces_the_content(tmp_path: Path) -> None:
    path = tmp_path / "f"
    atomic_write(path, b"1")
    atomic_write(path, b"2")
    assert path.read_bytes() == b"2"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
