"""The project's error types: each carries a message fit for one line on stderr."""

from __future__ import annotations


class RenderdError(Exception):
    """Base of every error renderd reports to a person."""


class UsageError(RenderdError):
    """Bad command-line arguments or input (exit status 2)."""


class InfoFileError(RenderdError):
    """An info file (or job manifest) that cannot be used, with where the problem is."""

    def __init__(self, source: str, message: str, key: str | None = None, line: int | None = None):
        self.source = source
        self.key = key
        self.line = line
        self.reason = message
        where = source if line is None else f"{source}:{line}"
        what = f"{key}: {message}" if key else message
        super().__init__(f"{where}: {what}")


class SpoolError(RenderdError):
    """The spool folder cannot be used (missing, unwritable, not a folder)."""


class RunnerError(RenderdError):
    """A chunk that cannot be run as written (its scene file is missing, its scene does not exist...)."""
