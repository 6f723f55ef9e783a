"""Runners: one per kind of work, each turning a chunk into command lines and judging the result.

A runner is small and pure apart from `check`, which may look at the files a chunk wrote:

    commands(info, places) -> the argv lists to run, in order (`places`: job, spool and output paths);
                              may raise RunnerError when the chunk cannot run as written
    progress(line)         -> a short progress text parsed from one output line, or None
    check(info, places)    -> why a run that exited 0 still failed, or None
    outputs(info, places)  -> the frame images the chunk must leave (after `commands`), which the daemon
                              holds to the job's output checks (minimum size, not all black...) and
                              hands to hook scripts

A runner object serves one attempt, so it may keep state between these calls. Adding a renderer is
one module here and one line in `runner_for`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from renderd.infofiles.format import InfoFile


class Runner(Protocol):
    name: str

    def commands(self, info: InfoFile, places: dict[str, str]) -> list[list[str]]: ...

    def progress(self, line: str) -> str | None: ...

    def check(self, info: InfoFile, places: dict[str, str]) -> str | None: ...

    def outputs(self, info: InfoFile, places: dict[str, str]) -> list[Path]: ...


def runner_for(info: InfoFile) -> Runner:
    """A fresh runner for one attempt: by the `runner:` key, else Blender's for `blender ...`, else a command's."""
    from renderd.runner.blender import BlenderRunner
    from renderd.runner.command import CommandRunner, EndRunner
    from renderd.runner.ffmpeg import FfmpegRunner
    from renderd.runner.povray import PovrayRunner
    from renderd.runner.stitch import StitchRunner

    runners: dict[str, type] = {"blender": BlenderRunner, "povray": PovrayRunner, "ffmpeg": FfmpegRunner,
                                "stitch": StitchRunner, "end": EndRunner}
    name = info.extra.get("runner")
    if not isinstance(name, str):
        # a hand-written Blender or POV-Ray command gets that renderer's checks; ffmpeg's runner is for the
        # video step only (it expects one video), so a hand-written ffmpeg command is a plain command
        program = os.path.basename(info.argv[0]) if info.argv else ""
        name = program if program in ("blender", "povray") else "command"
    return runners.get(name, CommandRunner)()
