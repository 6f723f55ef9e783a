"""POV-Ray: frames of an animation or rows of one image, with progress from its own output lines.

POV-Ray numbers an animation's files with as many digits as its final frame has (`+KFF24`:
`scene03.png`), renders `+SF`..`+EF` of the frames `+KFI`..`+KFF` (so the clock of each frame is
the one a whole-animation render gives it), and writes a full-size image for a `+SR`..`+ER` strip
with the other rows black. Every expected file is checked after the run, whatever the exit status.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePath

from renderd.infofiles.format import InfoFile
from renderd.runner.command import CommandRunner
from renderd.runner.images import check_image

_OPTION_RE = re.compile(r"^[+-](KFI|KFF|SF|EF|SR|ER|W|H|I|O)(.*)$", re.IGNORECASE)
_FRAME_RE = re.compile(r"Rendering frame (\d+) of (\d+)")
_PIXELS_RE = re.compile(r"Rendered (\d+) of (\d+) pixels \((\d+)%\)")
_FINISHED = "POV-Ray finished"


@dataclass(frozen=True)
class PovArgs:
    """What renderd needs to know of a POV-Ray command line."""

    scene: str | None
    output: str | None
    width: int | None
    height: int | None
    first: int | None  # +KFI: the animation's initial frame
    final: int | None  # +KFF
    start: int | None  # +SF: the first frame this run renders
    end: int | None  # +EF


def read_args(argv: list[str]) -> PovArgs:
    found: dict[str, str] = {}
    for arg in argv[1:]:
        if match := _OPTION_RE.match(arg):
            found[match[1].upper()] = match[2]

    def number(key: str) -> int | None:
        value = found.get(key, "")
        return int(value) if re.fullmatch(r"-?\d+", value) else None

    return PovArgs(found.get("I"), found.get("O"), number("W"), number("H"), number("KFI"), number("KFF"),
                   number("SF"), number("EF"))


def frame_files(args: PovArgs) -> list[Path]:
    """The files one POV-Ray run writes: one per frame of an animation, else the `+O` file itself."""
    output = args.output or (str(PurePath(args.scene or "scene").with_suffix(".png")))
    if not PurePath(output).suffix:
        output += ".png"
    if args.first is None or args.final is None:
        return [Path(output)]
    path = PurePath(output)
    digits = len(str(abs(args.final)))
    start = args.start if args.start is not None else args.first
    end = args.end if args.end is not None else args.final
    return [Path(path.with_name(f"{path.stem}{frame:0{digits}d}{path.suffix}")) for frame in range(start, end + 1)]


class PovrayRunner(CommandRunner):
    """Placeholders and `{frame}` as for any command; progress and output checks from POV-Ray's options."""

    name = "povray"

    def __init__(self) -> None:
        self.expected: list[Path] = []
        self.size: tuple[int | None, int | None] = (None, None)
        self.starts: list[int] = []  # the first frame of each run, to name the frame in progress
        self.run = 0
        self.frame: int | None = None

    def commands(self, info: InfoFile, places: dict[str, str]) -> list[list[str]]:
        commands = super().commands(info, places)
        root = Path(places.get("spool", "."))
        self.expected, self.starts = [], []
        for argv in commands:
            args = read_args(argv)
            self.size = (args.width, args.height)
            self.expected += [root / path for path in frame_files(args)]
            self.starts.append(args.start if args.start is not None else args.first or 1)
        for folder in {path.parent for path in self.expected}:
            folder.mkdir(parents=True, exist_ok=True)  # POV-Ray does not create folders
        return commands

    def progress(self, line: str) -> str | None:
        if _FINISHED in line:
            self.run += 1
            return None
        if match := _FRAME_RE.search(line):
            start = self.starts[min(self.run, len(self.starts) - 1)] if self.starts else 1
            self.frame = start + int(match[1]) - 1
            return f"frame {self.frame} ({match[1]}/{match[2]})"
        if matches := _PIXELS_RE.findall(line):
            done, total, percent = matches[-1]
            where = f"frame {self.frame}, " if self.frame is not None else ""
            return f"{where}{percent}% of {int(total)} pixels"
        return None

    def check(self, info: InfoFile, places: dict[str, str]) -> str | None:
        width, height = self.size
        problems = [problem for path in self.expected if (problem := check_image(path, width, height))]
        if not problems:
            return None
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        return f"{len(problems)} of {len(self.expected)} frames bad: {'; '.join(problems[:3])}{more}"

    def outputs(self, info: InfoFile, places: dict[str, str]) -> list[Path]:
        return list(self.expected)
