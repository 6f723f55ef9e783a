"""The last rendered frame of a job, drawn with half blocks: two pixels a character cell."""

from __future__ import annotations

from pathlib import Path

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def newest_frame(folder: Path) -> Path | None:
    """The most recently written image in `folder` (None when there is none)."""
    try:
        images = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.stat().st_size > 0]
    except OSError:
        return None
    return max(images, key=lambda p: p.stat().st_mtime, default=None)


def half_blocks(path: Path, width: int, height: int) -> list[list[tuple[tuple[int, int, int], tuple[int, int, int]]]]:
    """Rows of (top, bottom) colours for `width` x `height` cells, keeping the image's aspect ratio."""
    from PIL import Image  # only the preview needs an image decoder

    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = min(width / image.width, (height * 2) / image.height)
        size = (max(1, int(image.width * scale)), max(2, int(image.height * scale) // 2 * 2))
        pixels = image.resize(size).load()
        return [
            [(pixels[x, y], pixels[x, y + 1]) for x in range(size[0])]
            for y in range(0, size[1] - 1, 2)
        ]


class FramePreview(Widget):
    """Shows one image file; `show(path)` swaps it (decoding is done by the caller's worker)."""

    DEFAULT_CSS = """
    FramePreview { width: 1fr; height: 1fr; }
    """

    def __init__(self, **kwargs: object):
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.cells: list[list[tuple[tuple[int, int, int], tuple[int, int, int]]]] = []
        self.caption = "no frame yet"

    def show(self, cells: list, caption: str) -> None:
        self.cells = cells
        self.caption = caption
        self.refresh()

    def render_line(self, y: int) -> Strip:
        if y < len(self.cells):
            return Strip([Segment("▀", Style(color=f"rgb{top}", bgcolor=f"rgb{bottom}"))
                          for top, bottom in self.cells[y]])
        if y == len(self.cells):
            return Strip([Segment(self.caption[: self.size.width], Style(dim=True))])
        return Strip.blank(self.size.width)
