"""What `render jobs` and `render nodes` show, computed from what was read from the spool. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

from renderd.infofiles.format import FrameRange, InfoFile, parse_time
from renderd.infofiles.records import Completion, Job, NodeRecord
from renderd.scheduling import Candidate, waiting_for

NODE_OFFLINE_AFTER = 20.0
WAITING = "waiting for frames"  # the state shown for a step whose frames are not all done


@dataclass
class JobSummary:
    id: str
    status: str
    priority: int | None
    owner: str | None
    frames: str
    total: int
    done: int = 0
    running: int = 0
    queued: int = 0
    failed: int = 0
    cancelled: int = 0
    progress: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    waiting: str | None = None
    steps: dict[str, str] = field(default_factory=dict)  # the steps after the frames (video, end) and their state
    blocklisted: dict[str, str] = field(default_factory=dict)  # nodes that stopped taking this job, and why
    elapsed: float | None = None
    eta: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def notes(self) -> list[str]:
        """The lines shown under the job: why it waits, errors, steps under way, blocklisted nodes, progress."""
        lines = [f"waiting: {self.waiting}"] if self.waiting else []
        lines += self.errors
        lines += [f"{name}: {state}" for name, state in self.steps.items()
                  if state != WAITING and not (name == "end" and state == "done")]
        lines += [f"blocklisted: {node} ({why})" for node, why in self.blocklisted.items()]
        return lines + self.progress


@dataclass(frozen=True)
class Invalid:
    path: str
    reason: str


@dataclass(frozen=True)
class NodeSummary:
    name: str
    host: str
    state: str
    job: str | None
    chunk: str | None
    frames: str | None
    progress: str | None
    cpu_percent: float | None
    load: list[float]
    memory: dict[str, int]
    swap: dict[str, int]
    last_seen: float | None  # seconds ago
    capabilities: dict[str, str | None]
    chunks_done: int
    chunks_failed: int
    note: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def frame_count(info: InfoFile) -> int:
    return len(info.frames) if info.frames else 1


def node_state(record: NodeRecord, now: float, is_alive: Callable[[NodeRecord], bool | None]) -> str:
    """The node's state, or 'offline' when it stopped, its heartbeat is stale, or (same host) its pid is gone."""
    if record.state == "offline" or record.stopped_at:
        return "offline"
    beat = parse_time(record.heartbeat)
    if beat is None or now - beat > NODE_OFFLINE_AFTER:
        return "offline"
    if is_alive(record) is False:
        return "offline"
    return record.state


def summarize_nodes(
    records: list[NodeRecord], now: float, is_alive: Callable[[NodeRecord], bool | None]
) -> list[NodeSummary]:
    result = []
    for record in records:
        state = node_state(record, now, is_alive)
        beat = parse_time(record.heartbeat)
        working = state not in ("offline", "idle")
        result.append(
            NodeSummary(
                name=record.name,
                host=record.host,
                state=state,
                job=record.job if working else None,
                chunk=record.chunk if working else None,
                frames=record.frames if working else None,
                progress=record.progress if working else None,
                cpu_percent=record.cpu_percent,
                load=record.load,
                memory=record.memory,
                swap=record.swap,
                last_seen=None if beat is None else max(0.0, now - beat),
                capabilities=record.capabilities,
                chunks_done=record.chunks_done,
                chunks_failed=record.chunks_failed,
                note=None if state == "offline" else record.note,
            )
        )
    return result


def summarize_jobs(
    jobs: list[Job],
    queued: Mapping[str, InfoFile],
    running: Mapping[str, InfoFile],
    failed: Mapping[str, InfoFile],
    completions: Mapping[str, list[Completion]],
    live_nodes: Mapping[str, Mapping[str, str | None]],
    now: float,
    blocklist: Mapping[str, Mapping[str, str]] | None = None,
    free_memory: Mapping[str, int] | None = None,
) -> list[JobSummary]:
    """One row per job, plus one per loose (hand-dropped) info file, oldest job first.

    `blocklist`: the nodes blocklisted per job, with why; `free_memory`: available bytes per live node.
    """
    blocklist = blocklist or {}
    by_job: dict[str, JobSummary] = {}
    for job in jobs:
        try:
            total = len(FrameRange.parse(job.frames)) if job.frames else job.chunks
        except ValueError:
            total = job.chunks
        row = by_job[job.id] = JobSummary(job.id, job.status, job.priority, job.owner, job.frames, total)
        row.blocklisted = dict(blocklist.get(job.id, {}))
        if job.status == "failed" and job.error:
            row.errors.append(f"job failed: {job.error}")
    loose: list[JobSummary] = []

    def row_for(name: str, info: InfoFile) -> JobSummary:
        if info.job is not None and info.job in by_job:
            return by_job[info.job]
        row = JobSummary(
            name.removesuffix(".yaml"), "queued", info.priority, None, str(info.frames or ""), frame_count(info)
        )
        loose.append(row)
        return row

    def step(name: str, info: InfoFile, state: str) -> bool:
        """Record a finishing step's state on its job's row; True if `info` is one."""
        if info.after and info.job in by_job:
            by_job[info.job].steps[name.removesuffix(".yaml").removeprefix(f"{info.job}-")] = state
            return True
        return False

    reasons: dict[str, str] = {}
    for name, info in queued.items():
        if step(name, info, WAITING):
            continue
        row = row_for(name, info)
        row.queued += frame_count(info)
        blocked = frozenset(blocklist.get(info.job or "", {}))
        why = waiting_for(Candidate.from_info(name, info, 0.0), live_nodes, blocked, free_memory)
        if why:
            reasons.setdefault(row.id, why)
    for name, info in running.items():
        if step(name, info, f"running on {info.claim.node}" if info.claim else "running"):
            continue
        row = row_for(name, info)
        row.running += frame_count(info)
        if info.claim is not None:
            where = f"{name.removesuffix('.yaml')} on {info.claim.node}"
            row.progress.append(f"{where}: {info.claim.progress}" if info.claim.progress else where)
    for name, info in failed.items():
        if step(name, info, f"failed: {info.error} (log {info.log})"):
            continue
        row = row_for(name, info)
        row.failed += frame_count(info)
        if info.error:
            row.errors.append(f"{name.removesuffix('.yaml')}: {info.error} (log {info.log})")
    per_frame_seconds: list[float] = []
    last_finished: dict[str, float] = {}
    for job_id, records in completions.items():
        row = by_job.get(job_id)
        if row is None:
            continue
        seen = {}
        for record in records:
            seen[record.chunk] = record
        for record in seen.values():
            if not _is_chunk(record.chunk, job_id):  # a step after the frames (video, end)
                row.steps[record.chunk.removeprefix(f"{job_id}-")] = "done"
                continue
            count = len(FrameRange.parse(record.frames)) if record.frames else 1
            row.done += count
            per_frame_seconds.append(record.seconds / max(1, count))
            last_finished[job_id] = max(last_finished.get(job_id, 0.0), parse_time(record.finished) or 0.0)
    average = sum(per_frame_seconds) / len(per_frame_seconds) if per_frame_seconds else None
    for job in jobs:
        row = by_job[job.id]
        row.cancelled = max(0, row.total - row.done - row.running - row.queued - row.failed)
        row.status = _job_status(job, row)
        row.waiting = reasons.get(row.id) if row.status == "queued" else None
        submitted = parse_time(job.submitted)
        until = last_finished.get(job.id, now) if row.status == "done" else now
        row.elapsed = None if submitted is None else max(0.0, until - submitted)
        remaining = row.running + row.queued
        if average is not None and remaining and row.status in ("running", "queued", "finishing"):
            row.eta = remaining * average / max(1, len(row.progress))
    for row in loose:
        row.status = "running" if row.running else "failed" if row.failed else "queued"
        row.waiting = reasons.get(row.id) if row.status == "queued" else None
    return [*by_job.values(), *loose]


def _is_chunk(name: str, job_id: str) -> bool:
    """A frame chunk (JOB-c0001) rather than a step (JOB-video, JOB-end)."""
    rest = name.removesuffix(".yaml").removeprefix(f"{job_id}-")
    return rest.startswith("c") and rest[1:].isdigit()


def _job_status(job: Job, row: JobSummary) -> str:
    if job.status in ("cancelled", "failed"):
        return job.status
    if row.total and row.done >= row.total:
        pending = [state for state in row.steps.values() if state != "done"]
        if not pending:
            return "done"
        return "failed" if any(state.startswith("failed") for state in pending) else "finishing"
    if job.status == "paused":
        return "paused"
    if row.running:
        return "running"
    if row.queued:
        return "queued"
    if row.failed:
        return "failed"
    return "done" if row.done else "cancelled"
