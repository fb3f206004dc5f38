"""`modelfleet dev-cluster --state-dir`: the folder is the cluster's own, never a user's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfleet.cli import main


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    """A user's own file in the folder given as --state-dir."""
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    return keep


def test_up_refuses_a_folder_holding_something_else(
    notes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main.main(["dev-cluster", "up", "--state-dir", str(notes.parent)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"--state-dir {notes.parent}: the folder is not empty and holds no dev cluster" in err
    assert notes.read_text() == "mine"


def test_down_without_a_cluster_removes_nothing(
    notes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main.main(["dev-cluster", "down", "--state-dir", str(notes.parent)]) == 0
    assert "no dev cluster was running" in capsys.readouterr().out
    assert notes.read_text() == "mine"


def test_status_of_a_state_dir_without_a_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main.main(["dev-cluster", "status", "--state-dir", str(tmp_path / "none")]) == 1
    assert "no dev cluster is running" in capsys.readouterr().out


def test_a_corrupt_state_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "state.json").write_text("{not json")
    assert main.main(["dev-cluster", "status", "--state-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"modelfleet dev-cluster: {tmp_path / 'state.json'}: not a dev-cluster")
    assert err.count("\n") == 1
