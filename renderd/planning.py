"""Job planning: split frames into chunks and build a job's manifest and info files. Pure: no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePath

from renderd.blendfile import Scene
from renderd.infofiles.format import FrameRange, InfoFile, OutputChecks, Requirement
from renderd.infofiles.records import Job
from renderd.runner.ffmpeg import video_command

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
class JobPolicy:
    """What any job may add: hooks, output checks, a memory hint, and when the whole job counts as failed."""

    hooks: dict[str, str | tuple[str, ...]] = field(default_factory=dict)  # pre, post, end, error
    checks: OutputChecks = OutputChecks()
    memory: int | None = None  # bytes of free memory a chunk needs
    max_failed_chunks: int | None = None  # None: the farm's setting

    def chunk_fields(self) -> dict[str, object]:
        """The InfoFile fields every chunk of the job carries (the `end` hook belongs to the end step)."""
        hooks = {name: command for name, command in self.hooks.items() if name != "end"}
        return {"hooks": hooks, "checks": self.checks, "memory": self.memory}

    def job_settings(self) -> dict[str, object]:
        return {"max_failed_chunks": self.max_failed_chunks} if self.max_failed_chunks else {}


END_COMMAND = "end"  # the end step's command is not run: its runner runs the `end` hooks and tells the owner


def end_step(job_id: str, after: list[str], priority: int, submitted: str, policy: JobPolicy) -> tuple[str, InfoFile]:
    """The step that closes a job once its chunks and other steps are done: exactly once, on one node."""
    hooks = {"end": policy.hooks["end"]} if policy.hooks.get("end") else {}
    return f"{job_id}-end.yaml", InfoFile(
        command=END_COMMAND, job=job_id, priority=priority, submitted=submitted, hooks=hooks,
        after=(job_id, *after), extra={"runner": "end"},
    )


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
    outputs: str | None = None  # the files each frame writes (`#` pattern), checked like rendered frames
    policy: JobPolicy = JobPolicy()


Plan = tuple[Job, list[tuple[str, InfoFile]], list[tuple[str, InfoFile]]]


def plan_command_job(request: CommandJobRequest, job_id: str, submitted: str) -> Plan:
    """A manifest, one queued info file per chunk (one chunk when the command has no frames), the end step."""
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
                outputs=request.outputs,
                **request.policy.chunk_fields(),
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
        output=request.outputs,
        settings=request.policy.job_settings(),
    )
    return job, chunks, [end_step(job_id, [], request.priority, submitted, request.policy)]


@dataclass(frozen=True)
class BlendJobRequest:
    """What `render add FILE.blend` asks for, for one scene."""

    blend: str  # as the nodes will see it (absolute, or relative to the spool)
    scene: Scene
    frames: FrameRange | None = None  # default: the scene's own range and step
    chunk_size: int = DEFAULT_CHUNK
    priority: int = 50
    output: str | None = None  # Blender `#` pattern; default under the spool's output/JOB/
    file_format: str = "PNG"
    video: str | None = None
    requires: tuple[Requirement, ...] = ()
    max_attempts: int = 3
    timeout: float | None = None
    paused: bool = False
    owner: str | None = None
    overwrite: bool = False
    policy: JobPolicy = JobPolicy()


VIDEO_CONTAINERS = ("mp4", "mov", "mkv", "webm", "gif")


def plan_blend_job(request: BlendJobRequest, job_id: str, submitted: str) -> Plan:
    """A manifest, one info file per chunk holding the full Blender command line, and the finishing steps.

    The command renders `-f {frames}`: the node fills in the chunk's frames that are not yet on disk,
    so a retried chunk costs at most the frame that was in progress.
    """
    scene = request.scene
    frames = request.frames or FrameRange(scene.frame_start, scene.frame_end, scene.frame_step)
    output = request.output or f"{{output}}/{job_stem(scene.name)}_####"
    command = ("blender", "-noaudio", "-b", request.blend, "-S", scene.name, "-o", output,
               "-F", request.file_format, "-f", "{frames}")
    requires = (Requirement("blender"), *request.requires)
    extra = {"runner": "blender", **({"overwrite": True} if request.overwrite else {})}
    ranges = split_frames(frames, request.chunk_size)
    chunks = [
        (
            chunk_name(job_id, index, len(ranges)),
            InfoFile(command=command, frames=part, job=job_id, priority=request.priority, requires=requires,
                     max_attempts=request.max_attempts, timeout=request.timeout, submitted=submitted, extra=extra,
                     **request.policy.chunk_fields()),
        )
        for index, part in enumerate(ranges, start=1)
    ]
    finishing = []
    if request.video:
        base = str(PurePath(request.blend).parent / output[2:]) if output.startswith("//") else output
        frames_glob = re.sub(r"#+", "*", base if "#" in base else base + "*")
        extension = {"PNG": ".png", "JPEG": ".jpg", "OPEN_EXR": ".exr", "TIFF": ".tif", "BMP": ".bmp"}.get(
            request.file_format.upper(), "." + request.file_format.lower())
        target = f"{{output}}/{job_id}.{request.video}"
        finishing.append((
            f"{job_id}-video.yaml",
            InfoFile(
                command=tuple(video_command(frames_glob + extension, scene.fps, request.video, target)),
                job=job_id, priority=request.priority, requires=(Requirement("ffmpeg"),),
                max_attempts=request.max_attempts, submitted=submitted,
                after=(job_id,), extra={"runner": "ffmpeg", "expect_frames": len(frames)},
            ),
        ))
    finishing.append(end_step(job_id, [name.removesuffix(".yaml") for name, _info in finishing], request.priority,
                              submitted, request.policy))
    job = Job(
        id=job_id, kind="blender", frames=str(frames), chunk_size=request.chunk_size, chunks=len(chunks),
        priority=request.priority, submitted=submitted, source=request.blend, scene=scene.name,
        owner=request.owner, output=output, status="paused" if request.paused else "active",
        requires=[str(req) for req in requires],
        settings={"format": request.file_format, "fps": scene.fps, "size": [scene.width, scene.height],
                  **({"video": request.video} if request.video else {}), **request.policy.job_settings()},
    )
    return job, chunks, finishing
