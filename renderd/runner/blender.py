"""Blender: skip frames already rendered, read progress from Blender's output, check every frame it should write.

Blender's exit status cannot be trusted (it exits 0 after failing to write a frame, or after
rendering the current scene when `-S` names one that does not exist), so the scene is looked up
before Blender starts and every expected frame is checked after it ends.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from renderd.blendfile import EXTENSIONS, BlendError, read_blend
from renderd.errors import RunnerError
from renderd.infofiles.format import InfoFile, expand
from renderd.runner.images import check_image

_FRAME_RE = re.compile(r"\bFra:(\d+)\b")
_SAVED_RE = re.compile(r"Saved: '([^']+)'")
_VALUE_OPTIONS = {
    "-S": "scene", "--scene": "scene", "-o": "output", "--render-output": "output",
    "-F": "format", "--render-format": "format",
}


@dataclass(frozen=True)
class BlenderArgs:
    """What renderd needs to know of a Blender command line."""

    blend: str | None
    scene: str | None
    output: str | None
    format: str | None


def read_args(argv: list[str]) -> BlenderArgs:
    found: dict[str, str] = {}
    blend = None
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg in _VALUE_OPTIONS and index + 1 < len(argv):
            found[_VALUE_OPTIONS[arg]] = argv[index + 1]
            index += 2
            continue
        if blend is None and arg.lower().endswith(".blend") and not arg.startswith("-"):
            blend = arg
        index += 1
    return BlenderArgs(blend, found.get("scene"), found.get("output"), found.get("format"))


def frame_path(pattern: str, frame: int, extension: str, blend_dir: Path) -> Path:
    """The file Blender writes for `frame` with `-o pattern`: `#` runs are the zero-padded frame number."""
    if pattern.startswith("//"):
        pattern = str(blend_dir / pattern[2:])
    runs = list(re.finditer(r"#+", pattern))
    if runs:
        last = runs[-1]
        pattern = pattern[: last.start()] + str(frame).zfill(len(last[0])) + pattern[last.end() :]
    else:
        pattern += str(frame).zfill(4)
    return Path(pattern + extension)


def _frame_option(argv: list[str]) -> list[int]:
    """The frame of a `-f N` written out (a tile of one frame has no `frames:` key)."""
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag in ("-f", "--render-frame") and value.lstrip("-").isdigit():
            return [int(value)]
    return []


class BlenderRunner:
    name = "blender"

    def __init__(self) -> None:
        self.frame: int | None = None
        self.saved = 0
        self.total = 0
        self.expected: dict[int, Path] = {}
        self.size: tuple[int, int] | None = None

    def commands(self, info: InfoFile, places: dict[str, str]) -> list[list[str]]:
        argv = expand(info.argv, None, None, places)  # the frame placeholders are filled in below
        args = read_args(argv)
        if args.blend is None:
            raise RunnerError("no .blend file in the Blender command line")
        blend = Path(places.get("spool", "."), args.blend) if not os.path.isabs(args.blend) else Path(args.blend)
        try:
            scenes = read_blend(blend, check_assets=False)
        except BlendError as error:
            raise RunnerError(str(error)) from None
        scene = scenes.scene(args.scene) if args.scene else scenes.active_scene
        if scene is None:
            names = ", ".join(s.name for s in scenes.scenes)
            raise RunnerError(f"{blend}: no scene named {args.scene!r} (it has {names})")
        self.size = (scene.width, scene.height)
        frames = info.frames.frames if info.frames else _frame_option(argv) or [scene.frame_start]
        if args.output:
            extension = EXTENSIONS.get((args.format or scene.file_format).upper(), "")
            self.expected = {f: frame_path(args.output, f, extension, blend.parent) for f in frames}
        todo = frames
        if "{frames}" in " ".join(info.argv) and not info.extra.get("overwrite"):
            todo = [f for f in frames if f not in self.expected or self._problem(f) is not None]
        self.total = len(todo)
        if not todo:
            return []  # every frame is already there (a retry after a crash, or the job added again)
        values = {"{frames}": ",".join(str(f) for f in todo), "{start}": str(todo[0]), "{end}": str(todo[-1]),
                  "{frame}": str(todo[0]), "{step}": str(info.frames.step if info.frames else 1)}
        filled = []
        for arg in argv:
            for token, value in values.items():
                arg = arg.replace(token, value)
            filled.append(arg)
        return [filled]

    def progress(self, line: str) -> str | None:
        if _SAVED_RE.search(line):
            self.saved += 1
        elif match := _FRAME_RE.search(line):
            self.frame = int(match[1])
        else:
            return None
        where = f"frame {self.frame}, " if self.frame is not None else ""
        return f"{where}{self.saved}/{self.total} saved"

    def check(self, info: InfoFile, places: dict[str, str]) -> str | None:
        problems = [problem for frame in self.expected if (problem := self._problem(frame))]
        if not problems:
            return None
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        return f"{len(problems)} of {len(self.expected)} frames bad: {'; '.join(problems[:3])}{more}"

    def outputs(self, info: InfoFile, places: dict[str, str]) -> list[Path]:
        return list(self.expected.values())

    def _problem(self, frame: int) -> str | None:
        width, height = self.size or (None, None)
        return check_image(self.expected[frame], width, height)
