"""The stitch step of a frame rendered in strips: `renderd-stitch` run with this daemon's own Python."""

from __future__ import annotations

import sys
from pathlib import Path

from renderd.infofiles.format import InfoFile, expand
from renderd.runner.command import CommandRunner
from renderd.runner.images import check_image


class StitchRunner(CommandRunner):
    name = "stitch"

    def commands(self, info: InfoFile, places: dict[str, str]) -> list[list[str]]:
        argv = expand(info.argv, info.frames, None, places)
        if argv and argv[0] == "renderd-stitch":  # the daemon's interpreter has renderd and Pillow, whatever PATH says
            argv = [sys.executable, "-m", "renderd.stitch", *argv[1:]]
        return [argv]

    def check(self, info: InfoFile, places: dict[str, str]) -> str | None:
        size = info.extra.get("size")
        width, height = size if isinstance(size, list) and len(size) == 2 else (None, None)
        targets = self.outputs(info, places)
        return check_image(targets[0], width, height) if targets else "no --output in the stitch command"

    def outputs(self, info: InfoFile, places: dict[str, str]) -> list[Path]:
        argv = expand(info.argv, info.frames, None, places)
        for flag, value in zip(argv, argv[1:], strict=False):
            if flag == "--output":
                return [Path(places.get("spool", "."), value)]
        return []
