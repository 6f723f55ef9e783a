"""Any command line: placeholders substituted, run once per chunk (or once per frame with `{frame}`)."""

from __future__ import annotations

from renderd.infofiles.format import InfoFile, expand, per_frame


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
        return None
