"""Which queued chunk a node takes next. Pure: the daemon hands in what it has read from the spool."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from renderd.infofiles.format import InfoFile, Requirement, format_size

Capabilities = Mapping[str, str | None]


@dataclass(frozen=True)
class Candidate:
    """What the scheduler needs to know about one queued info file."""

    name: str
    priority: int
    submitted: float  # when its job was submitted (the file's mtime for a hand-dropped one)
    first_frame: int
    requires: tuple[Requirement, ...]
    held: bool  # `status: paused` in the file, or its job is paused or cancelled
    failed_nodes: frozenset[str]
    job: str | None = None
    after: tuple[str, ...] = ()  # a step (video, end): runs once these jobs' chunks and these steps are done
    memory: int | None = None  # bytes of free memory it needs

    @classmethod
    def from_info(cls, name: str, info: InfoFile, submitted: float) -> Candidate:
        return cls(
            name=name,
            priority=info.priority,
            submitted=submitted,
            first_frame=info.first_frame,
            requires=info.requires,
            held=info.status == "paused",
            failed_nodes=info.failed_nodes,
            job=info.job,
            after=info.after,
            memory=info.memory,
        )


def order_key(candidate: Candidate) -> tuple[int, float, int, str]:
    """Highest priority first, then the oldest job, then the lowest frame."""
    return (-candidate.priority, candidate.submitted, candidate.first_frame, candidate.name)


def can_run(candidate: Candidate, capabilities: Capabilities) -> bool:
    return all(req.satisfied_by(capabilities) for req in candidate.requires)


def runnable(
    candidates: Iterable[Candidate],
    node: str,
    capabilities: Capabilities,
    held_jobs: frozenset[str] = frozenset(),
    other_nodes: Mapping[str, Capabilities] | None = None,
    finished: frozenset[str] | None = None,
    blocklisted: frozenset[str] = frozenset(),
    free_memory: int | None = None,
) -> list[Candidate]:
    """The chunks this node may try, best first.

    A chunk the node already failed is left to others while another live node (`other_nodes`) that has
    not failed it could run it; when none could, the node takes it again rather than leave it stranded.
    A step waits until everything it is `after` is in `finished` (None: do not look at dependencies).
    Jobs this node is `blocklisted` for, and chunks needing more memory than `free_memory`, are left.
    """
    others = other_nodes or {}
    chosen = []
    for candidate in candidates:
        if candidate.held or (candidate.job is not None and candidate.job in held_jobs):
            continue
        if candidate.job is not None and candidate.job in blocklisted:
            continue
        if finished is not None and not all(name in finished for name in candidate.after):
            continue
        if candidate.memory is not None and free_memory is not None and candidate.memory > free_memory:
            continue
        if not can_run(candidate, capabilities):
            continue
        if node in candidate.failed_nodes and any(
            other not in candidate.failed_nodes and can_run(candidate, caps) for other, caps in others.items()
        ):
            continue
        chosen.append(candidate)
    chosen.sort(key=order_key)
    return chosen


def waiting_for(
    candidate: Candidate,
    live_nodes: Mapping[str, Capabilities],
    blocklisted: frozenset[str] = frozenset(),
    free_memory: Mapping[str, int] | None = None,
) -> str | None:
    """Why a queued chunk cannot start anywhere, or None when some live node could run it.

    `blocklisted`: the nodes blocklisted for the chunk's job; `free_memory`: available bytes by node.
    """
    if candidate.held:
        return "paused"
    if not live_nodes:
        return "no live node"
    capable = [name for name, caps in live_nodes.items() if can_run(candidate, caps)]
    if not capable:
        needs = ", ".join(str(req) for req in candidate.requires)
        return f"no live node has {needs}"
    allowed = [name for name in capable if name not in blocklisted]
    if not allowed:
        return f"every live node that can run it is blocklisted for this job ({', '.join(sorted(capable))})"
    memory = free_memory or {}
    if candidate.memory is not None and all(memory.get(name, candidate.memory) < candidate.memory
                                            for name in allowed):
        return f"needs {format_size(candidate.memory)} of free memory; no live node has that much"
    return None
