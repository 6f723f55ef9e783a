"""Job manifests, node registrations and completion records: their shapes and YAML. Pure, no I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from renderd.errors import InfoFileError
from renderd.infofiles.format import dump_mapping, load_mapping

Record = TypeVar("Record", "Job", "NodeRecord", "Completion")


@dataclass(frozen=True)
class Job:
    """What was asked for: written once by `render add`, changed by `render pause/priority/...`."""

    id: str
    kind: str
    frames: str
    chunk_size: int
    chunks: int
    priority: int
    submitted: str
    command: str | list[str] | None = None
    source: str | None = None
    scene: str | None = None
    owner: str | None = None
    output: str | None = None
    status: str = "active"  # active | paused | cancelled | failed
    error: str | None = None  # why it failed
    requires: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeRecord:
    """A daemon's registration and heartbeat, rewritten every few seconds by that daemon alone."""

    name: str
    host: str
    pid: int
    started: str
    heartbeat: str
    state: str = "idle"  # idle | busy | suspended | standby | paused | asleep | offline
    note: str | None = None  # why it is asleep or stepped aside
    pid_started: float | None = None
    address: str | None = None
    chunk: str | None = None
    job: str | None = None
    frames: str | None = None
    progress: str | None = None
    render_pid: int | None = None
    render_started: float | None = None
    render_rss: int | None = None  # bytes, the render and all its children
    cpu_count: int | None = None
    cpu_percent: float | None = None
    load: list[float] = field(default_factory=list)
    memory: dict[str, int] = field(default_factory=dict)
    swap: dict[str, int] = field(default_factory=dict)
    capabilities: dict[str, str | None] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    chunks_done: int = 0
    chunks_failed: int = 0
    poll: float | None = None
    stopped_at: str | None = None


@dataclass(frozen=True)
class Completion:
    """Proof that a chunk finished: one small file per chunk, so concurrent nodes never share a file."""

    chunk: str
    node: str
    host: str
    finished: str
    seconds: float
    job: str | None = None
    frames: str | None = None
    log: str | None = None
    attempts: int = 1


def dump_record(record: Job | NodeRecord | Completion) -> str:
    return dump_mapping({k: v for k, v in asdict(record).items() if v not in (None, [], {})})


def parse_record(cls: type[Record], text: str | bytes, source: str) -> Record:
    """Parse a record, keeping the keys it knows; missing required keys raise InfoFileError."""
    try:
        data = load_mapping(text)
    except Exception as error:  # noqa: BLE001 - any YAML or decoding problem is the file's fault
        raise InfoFileError(source, f"bad YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise InfoFileError(source, "expected a mapping of keys")
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as error:
        raise InfoFileError(source, f"incomplete record: {error}") from None
