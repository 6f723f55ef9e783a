"""Runners: one per kind of work, each turning a chunk into command lines and judging the result.

A runner is small and pure apart from `check`, which may look at the files a chunk wrote:

    commands(info, places) -> the argv lists to run, in order (`places`: job, spool and output paths);
                              may raise RunnerError when the chunk cannot run as written
    progress(line)         -> a short progress text parsed from one output line, or None
    check(info, places)    -> why a run that exited 0 still failed, or None

A runner object serves one attempt, so it may keep state between these calls. Adding a renderer is
one module here and one line in `runner_for`.
"""

from __future__ import annotations

import os
from typing import Protocol

from renderd.infofiles.format import InfoFile


class Runner(Protocol):
    name: str

    def commands(self, info: InfoFile, places: dict[str, str]) -> list[list[str]]: ...

    def progress(self, line: str) -> str | None: ...

    def check(self, info: InfoFile, places: dict[str, str]) -> str | None: ...


def runner_for(info: InfoFile) -> Runner:
    """A fresh runner for one attempt: by the `runner:` key, else by the program the command starts."""
    from renderd.runner.blender import BlenderRunner
    from renderd.runner.command import CommandRunner
    from renderd.runner.ffmpeg import FfmpegRunner

    runners: dict[str, type] = {"blender": BlenderRunner, "ffmpeg": FfmpegRunner}
    name = info.extra.get("runner")
    if not isinstance(name, str):
        argv = info.argv
        name = os.path.basename(argv[0]) if argv else ""
    return runners.get(name, CommandRunner)()
