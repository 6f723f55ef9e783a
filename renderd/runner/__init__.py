"""Runners: one per kind of work, each turning a chunk into command lines and judging the result.

A runner is small and pure apart from `check`, which may look at the files a chunk wrote:

    commands(info, places) -> the argv lists to run, in order (`places`: job, spool and output paths)
    progress(line)  -> a short progress text parsed from one output line, or None
    check(info)     -> why a run that exited 0 still failed, or None

Adding a renderer is one module here and one line in `runner_for`.
"""

from __future__ import annotations

from typing import Protocol

from renderd.infofiles.format import InfoFile


class Runner(Protocol):
    name: str

    def commands(self, info: InfoFile, places: dict[str, str]) -> list[list[str]]: ...

    def progress(self, line: str) -> str | None: ...

    def check(self, info: InfoFile) -> str | None: ...


def runner_for(info: InfoFile) -> Runner:
    """The runner for a chunk: named by its `runner:` key, else the generic command runner."""
    from renderd.runner.command import CommandRunner

    return CommandRunner()
