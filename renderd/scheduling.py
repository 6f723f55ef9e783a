"""Which queued chunk a node takes next. Pure: the daemon hands in what it has read from the spool."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from renderd.infofiles.format import InfoFile, Requirement

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
    after: str | None = None  # a finishing step (the video): runs once every chunk of this job is done

    @classmethod
    def from_info(cls, name: str, info: InfoFile, submitted: float) -> Candidate:
        after = info.extra.get("after")
        return cls(
            name=name,
            priority=info.priority,
            submitted=submitted,
            first_frame=info.first_frame,
            requires=info.requires,
            held=info.status == "paused",
            failed_nodes=info.failed_nodes,
            job=info.job,
            after=after if isinstance(after, str) else None,
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
    finished_jobs: frozenset[str] | None = None,
) -> list[Candidate]:
    """The chunks this node may try, best first.

    A chunk the node already failed is left to others while another live node (`other_nodes`) that has
    not failed it could run it; when none could, the node takes it again rather than leave it stranded.
    A finishing step waits until its job is in `finished_jobs` (None: do not look at dependencies).
    """
    others = other_nodes or {}
    chosen = []
    for candidate in candidates:
        if candidate.held or (candidate.job is not None and candidate.job in held_jobs):
            continue
        if finished_jobs is not None and candidate.after is not None and candidate.after not in finished_jobs:
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


def waiting_for(candidate: Candidate, live_nodes: Mapping[str, Capabilities]) -> str | None:
    """Why a queued chunk cannot start anywhere, or None when some live node could run it."""
    if candidate.held:
        return "paused"
    if not live_nodes:
        return "no live node"
    if any(can_run(candidate, caps) for caps in live_nodes.values()):
        return None
    needs = ", ".join(str(req) for req in candidate.requires)
    return f"no live node has {needs}"
