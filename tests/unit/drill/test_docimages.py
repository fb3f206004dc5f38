"""The images of docs/operations.md come from the inputs committed beside them, the same bytes
on every run."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from modelfleet.drill.docimages import main, render_all

DOCS_IMG = Path(__file__).resolve().parents[3] / "docs" / "img"


def test_docs_images_render_from_their_inputs_reproducibly(tmp_path: Path) -> None:
    for name in ("status-example.json", "drill-canary-regression.json"):
        shutil.copy(DOCS_IMG / name, tmp_path / name)
    first = {p.name: p.read_bytes() for p in render_all(tmp_path)}
    assert set(first) == {"status.png", "drill-canary-regression.png"}
    again = {p.name: p.read_bytes() for p in render_all(tmp_path)}
    assert again == first
    with Image.open(tmp_path / "status.png") as png:
        assert png.format == "PNG" and png.width > 600


def test_an_empty_folder_is_an_error(tmp_path: Path, capsys: object) -> None:
    assert main([str(tmp_path)]) == 1
