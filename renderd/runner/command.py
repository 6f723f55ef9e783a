"""Any command line: placeholders substituted, run once per chunk (or once per frame with `{frame}`).

A command job may name the files each frame writes (`outputs: out/shot_####.png`); every one must
then be a whole image when the command ends, whatever its exit status said.
"""

from __future__ import annotations

import re
from pathlib import Path

from renderd.infofiles.format import InfoFile, expand, per_frame
from renderd.runner.images import check_image


class CommandRunner:
    name = "command"

    def commands(self, info: InfoFile, places: dict[str, str]) -> list[list[str]]:
        argv = info.argv
        if info.frames is not None and per_frame(argv):
            return [expand(argv, info.frames, frame, places) for frame in info.frames.frames]
        return [expand(argv, info.frames, None, places)]

    def progress(self, line: str) -> str | None:
        return None

    def check(self, info: InfoFile, places: dict[str, str]) -> str | None:
        problems = [problem for path in self.outputs(info, places) if (problem := check_image(path))]
        if not problems:
            return None
        return f"{len(problems)} output files bad: {'; '.join(problems[:3])}"

    def outputs(self, info: InfoFile, places: dict[str, str]) -> list[Path]:
        return output_paths(info, places)


def output_paths(info: InfoFile, places: dict[str, str]) -> list[Path]:
    """The files named by `outputs:` for each frame: `#` runs become the zero-padded frame, `{frame}` the frame."""
    if info.outputs is None:
        return []
    frames = info.frames.frames if info.frames else [None]
    root = Path(places.get("spool", "."))
    paths = []
    for frame in frames:
        pattern = expand([info.outputs], info.frames, frame, places)[0]
        runs = list(re.finditer(r"#+", pattern))
        if runs and frame is not None:
            last = runs[-1]
            pattern = pattern[: last.start()] + str(frame).zfill(len(last[0])) + pattern[last.end() :]
        paths.append(root / pattern)
    return paths


class EndRunner:
    """A job's end step: nothing of its own to run; the daemon runs the `end` hooks and sends the notice."""

    name = "end"

    def commands(self, info: InfoFile, places: dict[str, str]) -> list[list[str]]:
        return []

    def progress(self, line: str) -> str | None:
        return None

    def check(self, info: InfoFile, places: dict[str, str]) -> str | None:
        return None

    def outputs(self, info: InfoFile, places: dict[str, str]) -> list[Path]:
        return []
