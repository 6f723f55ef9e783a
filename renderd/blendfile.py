"""Reading .blend files without Blender: scenes, frame ranges, output settings and missing assets.

blender-asset-tracer (Blender Studio's own reader) does the parsing, for files from Blender 2.8 to
5.0, plain, gzip- or zstd-compressed. Scenes are the `SC` blocks, their render settings under `r`;
the active scene is the file's `GLOB.curscene`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from renderd.errors import RenderdError

# Blender's R_IMF_IMTYPE_* numbers -> the name `blender -F` takes and the extension Blender writes.
IMAGE_TYPES: dict[int, tuple[str, str]] = {
    0: ("TGA", ".tga"),
    1: ("IRIS", ".rgb"),
    4: ("JPEG", ".jpg"),
    7: ("IRIZ", ".rgb"),
    14: ("RAWTGA", ".tga"),
    17: ("PNG", ".png"),
    20: ("BMP", ".bmp"),
    21: ("HDR", ".hdr"),
    22: ("TIFF", ".tif"),
    23: ("OPEN_EXR", ".exr"),
    26: ("CINEON", ".cin"),
    27: ("DPX", ".dpx"),
    28: ("OPEN_EXR_MULTILAYER", ".exr"),
    29: ("DDS", ".dds"),
    30: ("JP2", ".jp2"),
    35: ("WEBP", ".webp"),
}
MOVIE_TYPES = {15: "AVIRAW", 16: "AVIJPEG", 24: "FFMPEG", 31: "H264", 32: "XVID", 33: "THEORA"}
EXTENSIONS = {name: ext for name, ext in IMAGE_TYPES.values()}


class BlendError(RenderdError):
    """A .blend file that cannot be read, with the reason."""


@dataclass(frozen=True)
class Scene:
    name: str
    frame_start: int
    frame_end: int
    frame_step: int
    engine: str
    resolution_x: int
    resolution_y: int
    resolution_percentage: int
    fps: float
    output: str
    file_format: str
    active: bool = False

    @property
    def width(self) -> int:
        return self.resolution_x * self.resolution_percentage // 100

    @property
    def height(self) -> int:
        return self.resolution_y * self.resolution_percentage // 100

    @property
    def frames(self) -> str:
        text = f"{self.frame_start}-{self.frame_end}"
        return text if self.frame_step == 1 else f"{text}:{self.frame_step}"


@dataclass(frozen=True)
class MissingAsset:
    kind: str  # image, library, sound, movie clip, cache, ...
    block: str  # the datablock that uses it
    path: str  # as written in the file
    resolved: str  # where that points, from the .blend's folder


@dataclass(frozen=True)
class BlendInfo:
    path: str
    version: str
    compression: str | None
    scenes: list[Scene]
    missing: list[MissingAsset] = field(default_factory=list)

    @property
    def active_scene(self) -> Scene:
        return next((scene for scene in self.scenes if scene.active), self.scenes[0])

    def scene(self, name: str) -> Scene | None:
        return next((scene for scene in self.scenes if scene.name == name), None)

    def to_dict(self) -> dict:
        data = asdict(self)
        for scene, raw in zip(self.scenes, data["scenes"], strict=True):
            raw.update(width=scene.width, height=scene.height, frames=scene.frames)
        return data


_BLOCK_KINDS = {b"IM": "image", b"LI": "library", b"SO": "sound", b"MC": "movie clip", b"CF": "cache",
                b"VO": "volume", b"TX": "texture", b"ME": "mesh cache", b"OB": "object cache"}


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.split(b"\0", 1)[0].decode("utf-8", "replace")
    return str(value)


def read_blend(path: str | Path, check_assets: bool = True) -> BlendInfo:
    """Every scene of a .blend file (and, with `check_assets`, the external files it needs that are missing).

    Raises BlendError with a one-line reason for a missing, unreadable, truncated or foreign file.
    """
    from blender_asset_tracer import blendfile
    from blender_asset_tracer.blendfile import exceptions

    path = Path(path)
    if not path.exists():
        raise BlendError(f"{path}: no such file")
    if path.is_dir():
        raise BlendError(f"{path}: is a folder, not a .blend file")
    if not os.access(path, os.R_OK):
        raise BlendError(f"{path}: not readable (permission denied)")
    logging.getLogger("blender_asset_tracer").setLevel(logging.CRITICAL)  # its warnings become our one line
    try:
        blend = blendfile.BlendFile(path)
    except exceptions.NoDNA1Block:
        raise BlendError(f"{path}: truncated or damaged .blend file (no DNA1 block)") from None
    except exceptions.BlendFileError as error:
        reason = str(error).split(":", 1)[0]
        raise BlendError(f"{path}: {reason[:1].lower() + reason[1:]}") from None
    except (OSError, EOFError, ValueError) as error:
        raise BlendError(f"{path}: cannot read: {error}") from None
    except Exception as error:  # noqa: BLE001 - any parser failure on a damaged file is the file's fault
        raise BlendError(f"{path}: damaged .blend file ({type(error).__name__}: {error})") from None
    try:
        scenes = _scenes(blend)
        header = blend.header
        version = f"{header.version // 100}.{header.version % 100}"
        compression = None
        magic = path.open("rb").read(4)
        if magic[:2] == b"\x1f\x8b":
            compression = "gzip"
        elif magic == b"\x28\xb5\x2f\xfd":
            compression = "zstd"
    except Exception as error:  # noqa: BLE001 - same: a damaged file
        raise BlendError(f"{path}: damaged .blend file ({type(error).__name__}: {error})") from None
    finally:
        blend.close()
    if not scenes:
        raise BlendError(f"{path}: the file has no scenes")
    missing = find_missing_assets(path) if check_assets else []
    return BlendInfo(str(path), version, compression, scenes, missing)


def _scenes(blend) -> list[Scene]:  # noqa: ANN001 - a blender_asset_tracer BlendFile
    active_name = None
    for glob in blend.find_blocks_from_code(b"GLOB"):
        current = glob.get_pointer(b"curscene")
        if current is not None:
            active_name = _text(current.id_name)[2:]
    scenes = []
    for block in blend.find_blocks_from_code(b"SC"):
        name = _text(block.id_name)[2:]
        imtype = block.get((b"r", b"im_format", b"imtype"))
        file_format = IMAGE_TYPES.get(imtype, (MOVIE_TYPES.get(imtype, f"type {imtype}"), ""))[0]
        fps_base = block.get((b"r", b"frs_sec_base")) or 1.0
        scenes.append(
            Scene(
                name=name,
                frame_start=block.get((b"r", b"sfra")),
                frame_end=block.get((b"r", b"efra")),
                frame_step=max(1, block.get((b"r", b"frame_step")) or 1),
                engine=_text(block.get((b"r", b"engine"))),
                resolution_x=block.get((b"r", b"xsch")),
                resolution_y=block.get((b"r", b"ysch")),
                resolution_percentage=block.get((b"r", b"size")),
                fps=round(block.get((b"r", b"frs_sec")) / fps_base, 3),
                output=_text(block.get((b"r", b"pic"))),
                file_format=file_format,
                active=name == active_name,
            )
        )
    return scenes


def find_missing_assets(path: Path) -> list[MissingAsset]:
    """External files the .blend (and its libraries) point to that do not exist where they point."""
    from blender_asset_tracer import trace

    missing = []
    seen = set()
    try:
        usages = list(trace.deps(path))
    except Exception as error:  # noqa: BLE001 - a trace failure must not hide the scenes; report it as one asset
        return [MissingAsset("unknown", "", "", f"could not trace dependencies: {error}")]
    for usage in usages:
        resolved = usage.abspath
        if usage.is_sequence:
            exists = resolved.parent.is_dir() and any(resolved.parent.iterdir())
        else:
            exists = resolved.exists()
        if exists:
            continue
        code = bytes(usage.block_name[:2])
        key = (str(resolved), code)
        if key in seen:
            continue
        seen.add(key)
        missing.append(
            MissingAsset(
                kind=_BLOCK_KINDS.get(code, code.decode("ascii", "replace")),
                block=_text(usage.block_name)[2:],
                path=_text(bytes(usage.asset_path)),
                resolved=str(resolved),
            )
        )
    return missing
