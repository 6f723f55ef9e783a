"""Job planning: split frames into chunks and build a job's manifest and info files. Pure: no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from renderd.infofiles.format import FrameRange, InfoFile, Requirement
from renderd.infofiles.records import Job

DEFAULT_CHUNK = 10


def split_frames(frames: FrameRange, chunk_size: int) -> list[FrameRange]:
    """Chunks of `chunk_size` rendered frames each (so a step of 2 spans twice the frame numbers)."""
    if chunk_size < 1:
        raise ValueError("chunk size must be 1 or more")
    numbers = frames.frames
    chunks = []
    for index in range(0, len(numbers), chunk_size):
        part = numbers[index : index + chunk_size]
        chunks.append(FrameRange(part[0], part[-1], frames.step))
    return chunks


def job_stem(text: str) -> str:
    """A short, file-name-safe stem for a job id, from a file or command name."""
    stem = re.sub(r"[^a-z0-9_-]+", "-", text.rsplit("/", 1)[-1].lower()).strip("-_")
    return (stem or "job")[:24]


def chunk_name(job_id: str, index: int, total: int) -> str:
    width = max(4, len(str(total)))
    return f"{job_id}-c{index:0{width}d}.yaml"


@dataclass(frozen=True)
class CommandJobRequest:
    """What `render add --cmd` asks for."""

    command: str | tuple[str, ...]
    frames: FrameRange | None
    chunk_size: int = DEFAULT_CHUNK
    priority: int = 50
    requires: tuple[Requirement, ...] = ()
    max_attempts: int = 3
    timeout: float | None = None
    paused: bool = False
    owner: str | None = None


def plan_command_job(request: CommandJobRequest, job_id: str, submitted: str) -> tuple[Job, list[tuple[str, InfoFile]]]:
    """A manifest and one queued info file per chunk (one chunk when the command has no frames)."""
    ranges: list[FrameRange | None] = split_frames(request.frames, request.chunk_size) if request.frames else [None]
    chunks = [
        (
            chunk_name(job_id, index, len(ranges)),
            InfoFile(
                command=request.command,
                frames=frames,
                job=job_id,
                priority=request.priority,
                requires=request.requires,
                max_attempts=request.max_attempts,
                timeout=request.timeout,
                submitted=submitted,
            ),
        )
        for index, frames in enumerate(ranges, start=1)
    ]
    job = Job(
        id=job_id,
        kind="command",
        frames=str(request.frames) if request.frames else "",
        chunk_size=request.chunk_size,
        chunks=len(chunks),
        priority=request.priority,
        submitted=submitted,
        command=request.command if isinstance(request.command, str) else list(request.command),
        owner=request.owner,
        status="paused" if request.paused else "active",
        requires=[str(req) for req in request.requires],
    )
    return job, chunks
