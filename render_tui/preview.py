"""The last rendered frame of a job, drawn with half blocks: two pixels a character cell."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def newest_frame(folder: Path) -> Path | None:
    """The most recently written image in `folder` (None when there is none)."""
    try:
        images = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.stat().st_size > 0]
    except OSError:
        return None
    return max(images, key=lambda p: p.stat().st_mtime, default=None)


Cells = list[list[tuple[tuple[int, int, int], tuple[int, int, int]]]]


def half_blocks(source: Path | Image.Image, width: int, height: int) -> Cells:
    """Rows of (top, bottom) colours for `width` x `height` cells, keeping the image's aspect ratio."""
    from PIL import Image as PILImage  # only the preview needs an image decoder

    if isinstance(source, Path):
        with PILImage.open(source) as image:
            return half_blocks(image.convert("RGB"), width, height)
    image = source.convert("RGB")
    scale = min(width / image.width, (height * 2) / image.height)
    size = (max(1, int(image.width * scale)), max(2, int(image.height * scale) // 2 * 2))
    pixels = image.resize(size).load()
    return [
        [(pixels[x, y], pixels[x, y + 1]) for x in range(size[0])]
        for y in range(0, size[1] - 1, 2)
    ]


def strips_so_far(parts: list[list], size: list[int], places: dict[str, str]) -> tuple[Image.Image, int]:
    """A frame rendered in strips as far as it has landed: the strips written so far over black, and how many."""
    from renderd.infofiles.format import expand
    from renderd.stitch import Part, compose

    paths = [Part(int(top), int(bottom), Path(places["spool"], expand([path], None, None, places)[0]))
             for top, bottom, path in parts]
    image, missing = compose(paths, (int(size[0]), int(size[1])))
    return image, len(paths) - len(missing)


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
