"""The info-file format: parse, validate and serialize one chunk's YAML. Pure: no paths, clock or I/O.

An info file is written by people as often as by the farm, so parsing is forgiving in form
(a command as a string or a list, a single frame or a range, a timeout as `90` or `"2h"`)
and strict in meaning: every problem names the key and, where YAML knows it, the line.
Keys the farm does not know are kept and written back untouched.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, astuple, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import yaml

from renderd.errors import InfoFileError

try:  # the C loader is about six times faster; fall back when PyYAML was built without it
    _Loader: type = yaml.CSafeLoader
    _Dumper: type = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader
    _Dumper = yaml.SafeDumper

STATUSES = ("queued", "running", "failed", "paused")
HOOK_NAMES = ("pre", "post", "end", "error")
PLACEHOLDERS = ("{start}", "{end}", "{frame}", "{frames}", "{step}", "{frame_args}")
FRAME_ARGS = "{frame_args}"  # an argument that is exactly this becomes one argument per frame
DEFAULT_PRIORITY = 50
DEFAULT_MAX_ATTEMPTS = 3
MAX_INFO_FILE_BYTES = 1 << 20

_FRAMES_RE = re.compile(r"^\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*(?::\s*(\d+))?)?\s*$")
_REQUIREMENT_RE = re.compile(r"^\s*([A-Za-z0-9_.+-]+?)\s*(?:(>=|<=|==|!=|>|<|=)\s*([0-9][0-9A-Za-z.]*))?\s*$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_DURATION_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class FrameRange:
    """Frames start..end inclusive, every `step`th."""

    start: int
    end: int
    step: int = 1

    def __post_init__(self) -> None:
        if self.step < 1:
            raise ValueError("step must be 1 or more")
        if self.end < self.start:
            raise ValueError(f"end frame {self.end} is before start frame {self.start}")

    @property
    def frames(self) -> list[int]:
        return list(range(self.start, self.end + 1, self.step))

    @property
    def last(self) -> int:
        """The last frame actually rendered (the end may fall between steps)."""
        return self.frames[-1]

    def __len__(self) -> int:
        return len(range(self.start, self.end + 1, self.step))

    def __str__(self) -> str:
        if self.start == self.end:
            return str(self.start)
        text = f"{self.start}-{self.end}"
        return text if self.step == 1 else f"{text}:{self.step}"

    @classmethod
    def parse(cls, value: object) -> FrameRange:
        """Read `A-B`, `A-B:STEP` or a single frame; raise ValueError with the reason."""
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"expected A-B, A-B:STEP or a frame number, got {value!r}")
        if isinstance(value, int):
            return cls(value, value)
        match = _FRAMES_RE.match(value)
        if not match:
            raise ValueError(f"expected A-B, A-B:STEP or a frame number, got {value!r}")
        start = int(match[1])
        end = int(match[2]) if match[2] is not None else start
        step = int(match[3]) if match[3] is not None else 1
        return cls(start, end, step)


@dataclass(frozen=True)
class Requirement:
    """A capability a node must have, optionally with a version bound (`blender>=4.2`)."""

    name: str
    op: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return self.name if self.op is None else f"{self.name}{self.op}{self.version}"

    @classmethod
    def parse(cls, text: str) -> Requirement:
        match = _REQUIREMENT_RE.match(text)
        if not match:
            raise ValueError(f"not a capability like 'blender' or 'blender>=4.2': {text!r}")
        op = "==" if match[2] == "=" else match[2]
        return cls(match[1].lower(), op, match[3])

    def satisfied_by(self, capabilities: dict[str, str | None]) -> bool:
        """True when `capabilities` (name -> version or None) meets this requirement."""
        if self.name not in capabilities:
            return False
        if self.op is None:
            return True
        have = capabilities[self.name]
        if have is None:
            return False
        mine, theirs = version_key(have), version_key(self.version or "")
        return {
            ">=": mine >= theirs,
            "<=": mine <= theirs,
            ">": mine > theirs,
            "<": mine < theirs,
            "==": mine[: len(theirs)] == theirs,
            "!=": mine[: len(theirs)] != theirs,
        }[self.op]


def version_key(version: str) -> tuple[int, ...]:
    """`4.2.1` -> (4, 2, 1); non-numeric parts end the key."""
    parts: list[int] = []
    for piece in re.split(r"[.\-+]", version):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits[0]))
    return tuple(parts)


@dataclass(frozen=True)
class OutputChecks:
    """What a written frame must be beyond a whole image: a minimum size, not all black, not all transparent.

    None means "not said here", so a job's checks can be laid over the farm's defaults.
    """

    min_size: int | None = None
    reject_black: bool | None = None
    reject_transparent: bool | None = None

    def __bool__(self) -> bool:
        return bool(self.min_size or self.reject_black or self.reject_transparent)

    def over(self, defaults: OutputChecks) -> OutputChecks:
        """These checks, with `defaults` filling what these leave unsaid."""
        return OutputChecks(*(mine if mine is not None else theirs
                              for mine, theirs in zip(astuple(self), astuple(defaults), strict=True)))

    def to_mapping(self) -> dict[str, Any]:
        data = {key: value for key, value in asdict(self).items() if value is not None}
        if self.min_size is not None:
            data["min_size"] = format_size(self.min_size)
        return data

    @classmethod
    def parse(cls, value: object) -> OutputChecks:
        """From `{min_size: 20k, reject_black: true, reject_transparent: true}`; ValueError with the reason."""
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise ValueError("must be a mapping like {min_size: 20k, reject_black: true}")
        unknown = set(value) - {"min_size", "reject_black", "reject_transparent"}
        if unknown:
            known = "min_size, reject_black, reject_transparent"
            raise ValueError(f"unknown check {sorted(unknown)[0]!r} (known: {known})")
        for key in ("reject_black", "reject_transparent"):
            if value.get(key) is not None and not isinstance(value[key], bool):
                raise ValueError(f"{key} must be true or false, got {value[key]!r}")
        size = value.get("min_size")
        return cls(parse_size(size) if size is not None else None, value.get("reject_black"),
                   value.get("reject_transparent"))


def parse_size(value: object) -> int:
    """Bytes from `20000`, `"20k"`, `"512M"`, `"4G"`, `"2GiB"`, `"1.5g"`; ValueError otherwise."""
    size: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        size = float(value)
    elif isinstance(value, str) and (match := _SIZE_RE.match(value)):
        if match[2] or "." not in match[1]:  # a number of bytes must be whole
            size = float(match[1]) * _SIZE_UNITS[match[2].lower()]
    if size is None or size < 0 or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"must be a size like 20000, '20k', '512M' or '4G', got {value!r}")
    return int(size)


def format_size(size: int) -> str:
    """`4G` for 4 GiB: the largest unit that states `size` exactly (it must parse back to the same bytes)."""
    for unit, scale in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("k", 1 << 10)):
        if size and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


@dataclass(frozen=True)
class Attempt:
    """One finished, unsuccessful attempt at a chunk."""

    node: str
    error: str
    log: str | None = None
    at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("node", self.node), ("error", self.error), ("log", self.log), ("at", self.at)) if v}


@dataclass(frozen=True)
class Claim:
    """Who holds a running chunk, and how it is getting on. Written by the holder only."""

    node: str
    host: str
    pid: int
    claimed_at: str
    heartbeat: str
    pid_started: float | None = None  # the daemon's start time, so a reused pid is not taken for it
    render_pid: int | None = None
    render_started: float | None = None
    progress: str | None = None


_CLAIM_KEYS = (
    "node", "host", "pid", "pid_started", "claimed_at", "heartbeat", "render_pid", "render_started", "progress",
)


@dataclass(frozen=True)
class InfoFile:
    """One chunk of work: a command line, its frames and its state."""

    command: str | tuple[str, ...]
    frames: FrameRange | None = None
    job: str | None = None
    priority: int = DEFAULT_PRIORITY
    requires: tuple[Requirement, ...] = ()
    status: str = "queued"
    attempts: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    timeout: float | None = None
    submitted: str | None = None
    claim: Claim | None = None
    error: str | None = None
    log: str | None = None
    history: tuple[Attempt, ...] = ()
    hooks: dict[str, str | tuple[str, ...]] = field(default_factory=dict, compare=False)  # pre/post/end/error
    checks: OutputChecks = OutputChecks()
    outputs: str | None = None  # the files each frame writes (`#` or {frame}), for jobs whose runner cannot tell
    memory: int | None = None  # bytes of free memory the chunk needs
    after: tuple[str, ...] = ()  # a job's steps (video, end) wait for these jobs' chunks or these steps
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def argv(self) -> list[str]:
        """The command as an argument list, placeholders not yet substituted."""
        if isinstance(self.command, str):
            return shlex.split(self.command)
        return list(self.command)

    @property
    def failed_nodes(self) -> frozenset[str]:
        return frozenset(attempt.node for attempt in self.history)

    @property
    def first_frame(self) -> int:
        return self.frames.start if self.frames else 0

    def with_changes(self, **changes: Any) -> InfoFile:
        return replace(self, **changes)


def parse(text: str | bytes, source: str = "<info file>", split_command: bool = True) -> InfoFile:
    """Parse and validate an info file's text; raise InfoFileError naming `source`, key and line.

    `split_command=False` skips checking that a string command splits into arguments (a third of the
    cost of parsing): for the scheduler's look at many files, whose chosen one is parsed fully again.
    """
    if isinstance(text, bytes):
        if len(text) > MAX_INFO_FILE_BYTES:
            raise InfoFileError(source, f"file is larger than {MAX_INFO_FILE_BYTES} bytes")
        if b"\0" in text:
            raise InfoFileError(source, "binary data, not YAML text")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InfoFileError(source, f"not UTF-8 text (byte {error.start})") from None
    if not text.strip():
        raise InfoFileError(source, "empty file")
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise InfoFileError(source, f"bad YAML: {problem}", line=mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise InfoFileError(source, f"expected a mapping of keys (command: ...), got {type(data).__name__}")
    try:
        return _from_mapping(data, split_command)
    except KeyProblem as problem:
        raise InfoFileError(source, problem.message, key=problem.key, line=_line_of_key(text, problem.key)) from None


class KeyProblem(Exception):
    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message


def _line_of_key(text: str, key: str) -> int | None:
    """The 1-based line where top-level `key` is written, or None (only called on the error path)."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    if not isinstance(root, yaml.MappingNode):
        return None
    for key_node, _value in root.value:
        if getattr(key_node, "value", None) == key:
            return key_node.start_mark.line + 1
    return None


def _from_mapping(data: dict[Any, Any], split_command: bool = True) -> InfoFile:
    for key in data:
        if not isinstance(key, str):
            raise KeyProblem(str(key), "keys must be words")
    if "command" not in data or data["command"] in (None, "", []):
        raise KeyProblem("command", "missing: an info file needs at least `command:`")
    command, argv = _command(data["command"], split_command)
    frames = None
    if data.get("frames") is not None:
        try:
            frames = FrameRange.parse(data["frames"])
        except ValueError as error:
            raise KeyProblem("frames", str(error)) from None
    if frames is None and any(p in arg for arg in argv for p in PLACEHOLDERS):
        raise KeyProblem("frames", "missing, but the command uses frame placeholders")
    status = data.get("status", "queued")
    if status not in STATUSES:
        raise KeyProblem("status", f"must be one of {', '.join(STATUSES)}, got {status!r}")
    attempts = _int(data, "attempts", 0, minimum=0)
    known = {
        "command", "frames", "job", "priority", "requires", "status", "attempts", "max_attempts", "timeout",
        "submitted", "error", "log", "history", "hooks", "checks", "outputs", "memory", "after", *_CLAIM_KEYS,
    }
    try:
        checks = OutputChecks.parse(data.get("checks"))
    except ValueError as error:
        raise KeyProblem("checks", str(error)) from None
    return InfoFile(
        command=command,
        frames=frames,
        job=_optional_str(data, "job"),
        priority=_int(data, "priority", DEFAULT_PRIORITY),
        requires=_requirements(data.get("requires")),
        status=status,
        attempts=attempts,
        max_attempts=_int(data, "max_attempts", DEFAULT_MAX_ATTEMPTS, minimum=1),
        timeout=_duration(data.get("timeout")),
        submitted=_optional_str(data, "submitted"),
        claim=_claim(data),
        error=_optional_str(data, "error"),
        log=_optional_str(data, "log"),
        history=_history(data.get("history")),
        hooks=parse_hooks(data.get("hooks"), "hooks"),
        checks=checks,
        outputs=_optional_str(data, "outputs"),
        memory=_size(data, "memory"),
        after=_after(data.get("after")),
        extra={k: v for k, v in data.items() if k not in known},
    )


def _command(value: object, split: bool = True) -> tuple[str | tuple[str, ...], list[str]]:
    """The command as written (kept for writing back) and as arguments (unsplit, as one, without `split`)."""
    if isinstance(value, str):
        if not split:
            return value, [value]
        try:
            argv = shlex.split(value)
        except ValueError as error:
            raise KeyProblem("command", f"cannot split into arguments: {error}") from None
        if not argv:
            raise KeyProblem("command", "is empty")
        return value, argv
    if isinstance(value, list):
        if not all(isinstance(arg, (str, int, float)) and not isinstance(arg, bool) for arg in value):
            raise KeyProblem("command", "a list command must hold only words and numbers")
        words = tuple(str(arg) for arg in value)
        return words, list(words)
    raise KeyProblem("command", f"must be a string or a list, got {type(value).__name__}")


def _int(data: dict[str, Any], key: str, default: int, minimum: int | None = None) -> int:
    value = data.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise KeyProblem(key, f"must be a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise KeyProblem(key, f"must be {minimum} or more, got {value}")
    return value


def _optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, (dict, list, bool)):
        raise KeyProblem(key, f"must be text, got {type(value).__name__}")
    return str(value)


def _requirements(value: object) -> tuple[Requirement, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise KeyProblem("requires", "must be a list of capabilities like [blender, 'povray>=3.7']")
    try:
        return tuple(Requirement.parse(item) for item in value)
    except ValueError as error:
        raise KeyProblem("requires", str(error)) from None


def parse_hooks(value: object, key: str) -> dict[str, str | tuple[str, ...]]:
    """`{pre: CMD, post: CMD, end: CMD, error: CMD}`, each command a string or a list, checked to split."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise KeyProblem(key, f"must be a mapping of {', '.join(HOOK_NAMES)} to commands")
    hooks: dict[str, str | tuple[str, ...]] = {}
    for name, command in value.items():
        if name not in HOOK_NAMES:
            raise KeyProblem(key, f"unknown hook {name!r} (known: {', '.join(HOOK_NAMES)})")
        if command in (None, "", []):
            continue
        try:
            hooks[name] = _command(command)[0]
        except KeyProblem as problem:
            raise KeyProblem(key, f"{name}: {problem.message.replace('a list command', 'a list')}") from None
    return hooks


def hook_argv(command: str | tuple[str, ...]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def _size(data: dict[str, Any], key: str) -> int | None:
    if data.get(key) is None:
        return None
    try:
        return parse_size(data[key])
    except ValueError as error:
        raise KeyProblem(key, str(error)) from None


def _after(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise KeyProblem("after", "must be a job id, a step id, or a list of them")


def parse_duration(value: object) -> float:
    """Seconds from `90`, `"90s"`, `"15m"`, `"2h"` or `"1d"`; ValueError otherwise."""
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION_RE.match(value)):
        seconds = float(match[1]) * _DURATION_UNITS[match[2]]
    if seconds is None or seconds <= 0:
        raise ValueError(f"must be a positive number of seconds (or like '90m', '2h'), got {value!r}")
    return seconds


def _duration(value: object) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as error:
        raise KeyProblem("timeout", str(error)) from None


def _claim(data: dict[str, Any]) -> Claim | None:
    if data.get("node") is None or data.get("pid") is None:
        return None
    node = _optional_str(data, "node") or ""
    return Claim(
        node=node,
        host=_optional_str(data, "host") or "",
        pid=_int(data, "pid", 0),
        pid_started=_optional_float(data, "pid_started"),
        claimed_at=_optional_str(data, "claimed_at") or "",
        heartbeat=_optional_str(data, "heartbeat") or "",
        render_pid=_int(data, "render_pid", 0) or None,
        render_started=_optional_float(data, "render_started"),
        progress=_optional_str(data, "progress"),
    )


def _optional_float(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise KeyProblem(key, f"must be a number, got {value!r}")
    return float(value)


def _history(value: object) -> tuple[Attempt, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise KeyProblem("history", "must be a list of attempts")
    attempts = []
    for item in value:
        if not isinstance(item, dict) or not item.get("node"):
            raise KeyProblem("history", "each attempt needs at least `node:` and `error:`")
        attempts.append(
            Attempt(
                node=str(item["node"]),
                error=str(item.get("error", "")),
                log=None if item.get("log") is None else str(item["log"]),
                at=None if item.get("at") is None else str(item["at"]),
            )
        )
    return tuple(attempts)


def to_mapping(info: InfoFile) -> dict[str, Any]:
    """The info file as an ordered mapping, the keys people read most first."""
    data: dict[str, Any] = {}
    if info.job is not None:
        data["job"] = info.job
    if info.frames is not None:
        data["frames"] = str(info.frames)
    data["priority"] = info.priority
    data["command"] = info.command if isinstance(info.command, str) else list(info.command)
    if info.requires:
        data["requires"] = [str(req) for req in info.requires]
    data["status"] = info.status
    data["attempts"] = info.attempts
    data["max_attempts"] = info.max_attempts
    if info.timeout is not None:
        data["timeout"] = int(info.timeout) if info.timeout.is_integer() else info.timeout
    if info.submitted is not None:
        data["submitted"] = info.submitted
    if info.claim is not None:
        claim = info.claim
        for key in _CLAIM_KEYS:
            value = getattr(claim, key)
            if value is not None:
                data[key] = value
    if info.log is not None:
        data["log"] = info.log
    if info.error is not None:
        data["error"] = info.error
    if info.history:
        data["history"] = [attempt.to_dict() for attempt in info.history]
    if info.hooks:
        data["hooks"] = {name: cmd if isinstance(cmd, str) else list(cmd) for name, cmd in info.hooks.items()}
    if info.checks.to_mapping():
        data["checks"] = info.checks.to_mapping()
    if info.outputs is not None:
        data["outputs"] = info.outputs
    if info.memory is not None:
        data["memory"] = format_size(info.memory)
    if info.after:
        data["after"] = info.after[0] if len(info.after) == 1 else list(info.after)
    for key, value in info.extra.items():
        data.setdefault(key, value)
    return data


def dump(info: InfoFile) -> str:
    """Serialize to YAML that parses back to an equal InfoFile."""
    return dump_mapping(to_mapping(info))


class _InlineList(list):
    """A list of plain words, written on one line: `command: [blender, -b, scene.blend]`."""


class _PeopleDumper(_Dumper):  # type: ignore[misc, valid-type]
    pass


_PeopleDumper.add_representer(
    _InlineList, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def _inline_short_lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _inline_short_lists(v) for k, v in value.items()}
    if isinstance(value, list):
        if all(isinstance(item, (str, int, float, bool)) or item is None for item in value):
            return _InlineList(value)
        return [_inline_short_lists(item) for item in value]
    return value


def dump_mapping(data: dict[str, Any]) -> str:
    """YAML for people: one key a line in insertion order, lists of words inline, no line wrapping."""
    return yaml.dump(
        _inline_short_lists(data), Dumper=_PeopleDumper, sort_keys=False, default_flow_style=False,
        width=1 << 16, allow_unicode=True,
    )


def load_mapping(text: str | bytes) -> Any:
    """Plain YAML load with the fast safe loader (for manifests and node files)."""
    return yaml.load(text, Loader=_Loader)


def format_time(moment: datetime) -> str:
    """UTC ISO-8601 with milliseconds, as every time in the spool is written."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(text: str | None) -> float | None:
    """Seconds since the epoch for a time written by format_time (or by hand, in ISO form)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def expand(
    argv: list[str], frames: FrameRange | None, frame: int | None = None, places: dict[str, str] | None = None
) -> list[str]:
    """Substitute the placeholders in each argument (after splitting, so no quoting issues).

    `places` fills `{job}`, `{spool}` and `{output}`, which each node resolves for its own mount of the spool.
    """
    values = {f"{{{key}}}": value for key, value in (places or {}).items()}
    if frames is not None:
        values.update({
            "{start}": str(frames.start),
            "{end}": str(frames.last),
            "{frame}": str(frames.start if frame is None else frame),
            "{frames}": ",".join(str(f) for f in frames.frames),
            "{step}": str(frames.step),
        })
    expanded = []
    for arg in argv:
        if arg == FRAME_ARGS and frames is not None:
            expanded += [str(f) for f in ([frame] if frame is not None else frames.frames)]
            continue
        for token, value in values.items():
            arg = arg.replace(token, value)
        expanded.append(arg)
    return expanded


def per_frame(argv: list[str]) -> bool:
    """A command that names `{frame}` runs once for each frame of its chunk."""
    return any("{frame}" in arg for arg in argv)
