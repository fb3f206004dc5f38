"""Fonts for the drill's images, and text drawn as a terminal "screenshot" (the ``modelfleet
status`` page in docs/operations.md).

Fonts come from Debian's ``fonts-dejavu-core`` (``/usr/share/fonts/truetype/dejavu``) when it is
installed, else Pillow's built-in default font, so the images render on any machine (the
built-in one is plainer). Pillow is imported here and in :mod:`~modelfleet.drill.chart` only;
it comes with the ``drill`` extra.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)
SANS, MONO = "DejaVuSans.ttf", "DejaVuSansMono.ttf"

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

TERMINAL_BG = (30, 32, 38)
TERMINAL_FG = (220, 223, 228)
TITLE_BG = (52, 55, 64)


def load_font(size: int, *, mono: bool = False) -> Font:
    """DejaVu Sans (Mono) at ``size`` pixels, or Pillow's default font."""
    name = MONO if mono else SANS
    for folder in FONT_DIRS:
        if (folder / name).is_file():
            return ImageFont.truetype(str(folder / name), size)
    return ImageFont.load_default(size)


def text_to_png(
    text: str, path: Path, *, title: str = "", size: int = 14, columns: int = 110
) -> Path:
    """Draw ``text`` (lines, no colour codes) in a monospace font on a dark terminal-like
    background with a title bar, lines cut at ``columns`` as a terminal that wide would show
    them, and save it as PNG at ``path``."""
    font = load_font(size, mono=True)
    lines = [
        line if len(line) <= columns else line[: columns - 1] + "…"
        for line in text.rstrip("\n").splitlines() or [""]
    ]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), "M" * 10, font=font)
    char_w, line_h = (right - left) / 10, int((bottom - top) * 1.45) + 2
    pad, bar = 16, 28
    width = int(max(len(line) for line in lines) * char_w) + 2 * pad
    height = bar + len(lines) * line_h + 2 * pad
    img = Image.new("RGB", (max(width, 320), height), TERMINAL_BG)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, img.width, bar), fill=TITLE_BG)
    for i, colour in enumerate(((237, 106, 94), (245, 191, 79), (98, 197, 84))):
        x = 14 + i * 20
        draw.ellipse((x, 9, x + 11, 20), fill=colour)
    if title:
        draw.text((80, 6), title, font=load_font(13), fill=TERMINAL_FG)
    y = bar + pad
    for line in lines:
        draw.text((pad, y), line, font=font, fill=TERMINAL_FG)
        y += line_h
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", optimize=True)
    return path
