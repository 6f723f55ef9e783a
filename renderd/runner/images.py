"""Is a rendered frame a whole, readable image of the expected size? Reads only headers and the tail."""

from __future__ import annotations

import struct
from pathlib import Path

from renderd.infofiles.format import OutputChecks, format_size


def check_image(path: Path, width: int | None = None, height: int | None = None) -> str | None:
    """None when `path` is a complete image (of `width` x `height` when given), else the reason."""
    try:
        size = path.stat().st_size
        if size == 0:
            return f"{path.name}: empty file"
        with path.open("rb") as handle:
            head = handle.read(65536)
            handle.seek(max(0, size - 16))
            tail = handle.read()
    except FileNotFoundError:
        return f"{path.name}: missing"
    except OSError as error:
        return f"{path.name}: unreadable ({error.strerror})"
    try:
        found = _dimensions(head, tail)
    except ValueError as error:
        return f"{path.name}: {error}"
    if found is None or width is None or height is None:
        return None  # a format whose header we do not read: existing and non-empty must do
    if found != (width, height):
        return f"{path.name}: {found[0]}x{found[1]}, expected {width}x{height}"
    return None


def _dimensions(head: bytes, tail: bytes) -> tuple[int, int] | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(head) < 24 or head[12:16] != b"IHDR":
            raise ValueError("damaged PNG header")
        if b"IEND" not in tail:
            raise ValueError("truncated PNG (no IEND)")
        return struct.unpack(">II", head[16:24])
    if head.startswith(b"\xff\xd8"):
        if not tail.rstrip(b"\0").endswith(b"\xff\xd9"):
            raise ValueError("truncated JPEG (no end marker)")
        return _jpeg_size(head)
    if head.startswith(b"BM") and len(head) >= 26:
        width, height = struct.unpack("<ii", head[18:26])
        return width, abs(height)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int]:
    index = 2
    while index + 9 < len(data):
        if data[index] != 0xFF:
            raise ValueError("damaged JPEG")
        marker = data[index + 1]
        length = struct.unpack(">H", data[index + 2 : index + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return width, height
        index += 2 + length
    raise ValueError("JPEG without a frame header")


# A frame whose brightest channel value stays at or below this is "all black": dithering and
# compression noise leave a few levels in frames that are black to the eye.
BLACK_LEVEL = 2


def check_content(path: Path, checks: OutputChecks) -> str | None:
    """None when a written frame passes the job's checks (minimum size, not all black, not all transparent)."""
    try:
        size = path.stat().st_size
    except OSError:
        return f"{path.name}: missing"
    if checks.min_size and size < checks.min_size:
        return f"{path.name}: {size} bytes, below the minimum of {format_size(checks.min_size)}"
    if not (checks.reject_black or checks.reject_transparent):
        return None
    from PIL import Image, UnidentifiedImageError  # decoding whole frames is only needed for these checks

    try:
        with Image.open(path) as image:
            image.load()
            bands = image.getbands()
            if checks.reject_transparent and "A" in bands and image.getchannel("A").getextrema()[1] == 0:
                return f"{path.name}: every pixel is transparent"
            if checks.reject_black:
                colour = image.convert("RGB") if image.mode not in ("RGB", "L") else image
                extrema = colour.getextrema()
                brightest = extrema[1] if colour.mode == "L" else max(high for _low, high in extrema)
                if brightest <= BLACK_LEVEL:
                    return f"{path.name}: every pixel is black"
    except UnidentifiedImageError:
        return None  # a format Pillow does not read (EXR): the pixel checks cannot judge it
    except (OSError, ValueError) as error:
        return f"{path.name}: cannot decode ({error})"
    return None
