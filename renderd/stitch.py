"""Stitch the strips of one frame into the whole image: `renderd-stitch --output OUT --part TOP BOTTOM FILE ...`.

Each strip is a full-size image in which only rows TOP..BOTTOM-1 (counted from the top) were
rendered, as POV-Ray (`+SR`/`+ER`) and Blender (a render border without cropping) write them.
The stitched image takes each strip's own rows, so it is the frame a single node would have
rendered, written once, atomically. The TUI uses `compose` to show the strips that have landed.
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from renderd.infofiles.spool import write_atomic


@dataclass(frozen=True)
class Part:
    top: int  # first row, from the top
    bottom: int  # one past the last row
    path: Path


def compose(parts: list[Part], size: tuple[int, int] | None = None) -> tuple[Image.Image, list[Part]]:
    """The strips that exist, each over its own rows of a black image; also the parts that were missing."""
    canvas: Image.Image | None = Image.new("RGB", size) if size else None
    missing = []
    for part in parts:
        try:
            with Image.open(part.path) as strip:
                strip.load()
                if canvas is None:
                    canvas = Image.new(strip.mode if strip.mode in ("RGB", "RGBA", "L") else "RGB", strip.size)
                if strip.size != canvas.size:
                    raise ValueError(f"{part.path.name} is {strip.size[0]}x{strip.size[1]}, "
                                     f"the other strips {canvas.size[0]}x{canvas.size[1]}")
                box = (0, part.top, canvas.width, part.bottom)
                canvas.paste(strip.convert(canvas.mode).crop(box), box)
        except FileNotFoundError:
            missing.append(part)
    return canvas if canvas is not None else Image.new("RGB", (1, 1)), missing


def stitch(parts: list[Part], target: Path) -> None:
    """Write the whole image from every strip; ValueError naming what is missing or does not fit."""
    image, missing = compose(parts)
    if missing:
        raise ValueError(f"{len(missing)} strip(s) missing: {', '.join(str(part.path) for part in missing[:3])}")
    covered = sorted((part.top, part.bottom) for part in parts)
    if covered[0][0] != 0 or covered[-1][1] != image.height or any(
            a[1] != b[0] for a, b in zip(covered, covered[1:], strict=False)):
        raise ValueError(f"the strips' rows {covered} do not cover the image's {image.height} rows once")
    data = io.BytesIO()
    image.save(data, format=Image.registered_extensions().get(target.suffix.lower(), "PNG"))
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, data.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="renderd-stitch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True, help="the whole image to write")
    parser.add_argument("--part", nargs=3, action="append", required=True, metavar=("TOP", "BOTTOM", "FILE"),
                        help="a strip: its first row, one past its last row (from the top), its file")
    args = parser.parse_args(argv)
    try:
        parts = [Part(int(top), int(bottom), Path(path)) for top, bottom, path in args.part]
        stitch(parts, args.output)
    except (ValueError, OSError) as error:
        print(f"renderd-stitch: {args.output}: {error}", file=sys.stderr)
        return 1
    print(f"renderd-stitch: {len(parts)} strips -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
