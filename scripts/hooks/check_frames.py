#!/usr/bin/env python3
"""A `post` hook: decode every frame the chunk wrote, and fail the chunk naming the first bad one.

    render add shot.blend --hook post='python3 /mnt/share/hooks/check_frames.py'

renderd already checks that each frame is a whole image of the right size; this hook goes further
and decompresses PNG data (every chunk's CRC, the pixel data's length) and looks for JPEG's end
marker, with nothing but Python's standard library, so it runs on any node. The frames come in
RENDERD_OUTPUT_FILES, one path per line.
"""

from __future__ import annotations

import os
import struct
import sys
import zlib
from pathlib import Path

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def png_problem(data: bytes) -> str | None:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "not a PNG"
    index, pixels, header = 8, [], None
    while index + 12 <= len(data):
        (length,) = struct.unpack(">I", data[index : index + 4])
        kind = data[index + 4 : index + 8]
        body = data[index + 8 : index + 8 + length]
        (crc,) = struct.unpack(">I", data[index + 8 + length : index + 12 + length] or b"\0\0\0\0")
        if len(body) < length or zlib.crc32(kind + body) != crc:
            return f"damaged {kind.decode('latin-1')} chunk at byte {index}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            pixels.append(body)
        elif kind == b"IEND":
            break
        index += 12 + length
    else:
        return "truncated (no IEND)"
    if header is None:
        return "no IHDR"
    width, height, depth, colour, _compression, _filter, interlace = header
    try:
        raw = zlib.decompress(b"".join(pixels))
    except zlib.error as error:
        return f"pixel data does not decompress: {error}"
    if interlace == 0:
        row = (width * CHANNELS.get(colour, 4) * depth + 7) // 8 + 1
        if len(raw) != row * height:
            return f"pixel data is {len(raw)} bytes, expected {row * height}"
    return None


def frame_problem(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError as error:
        return f"unreadable: {error.strerror}"
    if not data:
        return "empty"
    if path.suffix.lower() == ".png":
        return png_problem(data)
    if path.suffix.lower() in (".jpg", ".jpeg") and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        return "truncated JPEG"
    return None


def main() -> int:
    frames = [Path(line) for line in os.environ.get("RENDERD_OUTPUT_FILES", "").splitlines() if line]
    if not frames:
        print("check_frames: RENDERD_OUTPUT_FILES names no frames; nothing to check")
        return 0
    for path in frames:
        problem = frame_problem(path)
        if problem:
            print(f"check_frames: {path}: {problem}", file=sys.stderr)
            return 1
    print(f"check_frames: {len(frames)} frame(s) of {os.environ.get('RENDERD_CHUNK', '?')} decode cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
