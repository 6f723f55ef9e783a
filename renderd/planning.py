"""Job planning: split frames into chunks and build a job's manifest and info files. Pure: no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import PurePath

from renderd.blendfile import Scene
from renderd.infofiles.format import FrameRange, InfoFile, OutputChecks, Requirement
from renderd.infofiles.records import Job
from renderd.runner.blender import frame_path
from renderd.runner.ffmpeg import video_command
from renderd.runner.povray import frame_files
from renderd.runner.povray import read_args as read_pov_args

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


@dataclass(frozen=True, kw_only=True)
class JobOptions:
    """What every `render add` takes, whatever the job renders."""

    chunk_size: int = DEFAULT_CHUNK
    priority: int = 50
    requires: tuple[Requirement, ...] = ()
    max_attempts: int = 3
    timeout: float | None = None
    paused: bool = False
    owner: str | None = None
    policy: JobPolicy = JobPolicy()


@dataclass(frozen=True, kw_only=True)
class CommandJobRequest(JobOptions):
    """What `render add --cmd` asks for (and a script or a .rib file, which are commands too)."""

    command: str | tuple[str, ...]
    frames: FrameRange | None
    outputs: str | None = None  # the files each frame writes (`#` pattern), checked like rendered frames


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


@dataclass(frozen=True, kw_only=True)
class BlendJobRequest(JobOptions):
    """What `render add FILE.blend` asks for, for one scene."""

    blend: str  # as the nodes will see it (absolute, or relative to the spool)
    scene: Scene
    frames: FrameRange | None = None  # default: the scene's own range and step
    output: str | None = None  # Blender `#` pattern; default under the spool's output/JOB/
    file_format: str = "PNG"
    video: str | None = None
    overwrite: bool = False
    frame: int | None = None  # with `tiles`: the one frame to split
    tiles: int | None = None  # render one frame as this many horizontal strips, on as many nodes


VIDEO_CONTAINERS = ("mp4", "mov", "mkv", "webm", "gif")


def plan_blend_job(request: BlendJobRequest, job_id: str, submitted: str) -> Plan:
    """A manifest, one info file per chunk holding the full Blender command line, and the finishing steps.

    The command renders `-f {frames}`: the node fills in the chunk's frames that are not yet on disk,
    so a retried chunk costs at most the frame that was in progress.
    """
    scene = request.scene
    if request.tiles:
        return _plan_blend_tiles(request, job_id, submitted)
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


# ---- one frame in strips ------------------------------------------------------------------------------


def split_rows(height: int, count: int) -> list[tuple[int, int]]:
    """`count` bands of rows covering `height`, as even as whole rows allow: (top, bottom) from the top."""
    if not 1 <= count <= height:
        raise ValueError(f"cannot split {height} rows into {count} strips")
    bounds = [round(index * height / count) for index in range(count + 1)]
    return list(zip(bounds, bounds[1:], strict=False))


def stitch_step(job_id: str, target: str, parts: list[tuple[int, int, str]], size: tuple[int, int],
                priority: int, submitted: str) -> tuple[str, InfoFile]:
    """The step that puts the strips together once every one is done: exactly once, on one node."""
    command = ["renderd-stitch", "--output", target]
    for top, bottom, path in parts:
        command += ["--part", str(top), str(bottom), path]
    return f"{job_id}-stitch.yaml", InfoFile(
        command=tuple(command), job=job_id, priority=priority, submitted=submitted, after=(job_id,),
        extra={"runner": "stitch", "size": list(size)},
    )


def _strip_job(
    job_id: str, kind: str, commands: list[tuple[str, ...]], parts: list[tuple[int, int, str]], target: str,
    size: tuple[int, int], common: dict, job_fields: dict, policy: JobPolicy,
) -> Plan:
    chunks = [(chunk_name(job_id, index, len(commands)), InfoFile(command=command, job=job_id, **common))
              for index, command in enumerate(commands, start=1)]
    stitch = stitch_step(job_id, target, parts, size, common["priority"], common["submitted"])
    job = Job(id=job_id, kind=kind, frames="", chunk_size=1, chunks=len(chunks), priority=common["priority"],
              submitted=common["submitted"], output=target, **job_fields,
              settings={"size": list(size), "strips": [list(part) for part in parts], "stitched": target,
                        **policy.job_settings()})
    end = end_step(job_id, [stitch[0].removesuffix(".yaml")], common["priority"], common["submitted"], policy)
    return job, chunks, [stitch, end]


def _plan_blend_tiles(request: BlendJobRequest, job_id: str, submitted: str) -> Plan:
    """One frame of a scene as `tiles` bands, each a render border of the full frame (not cropped)."""
    scene = request.scene
    frame = request.frame if request.frame is not None else scene.frame_start
    width, height = scene.width, scene.height
    blend_dir = PurePath(request.blend).parent
    stem = job_stem(scene.name)
    commands, parts = [], []
    for index, (top, bottom) in enumerate(split_rows(height, request.tiles or 1), start=1):
        pattern = f"{{output}}/tiles/{stem}_t{index:02d}_####"
        # Blender's border counts from the bottom, in fractions; a quarter row in keeps the rounding exact.
        low, high = (height - bottom + 0.25) / height, (height - top + 0.25) / height if top else 1.0
        border = ("import bpy; r = bpy.context.scene.render; r.use_border = True; r.use_crop_to_border = False; "
                  f"r.border_min_x, r.border_max_x = 0.0, 1.0; r.border_min_y, r.border_max_y = {low!r}, {high!r}; "
                  "r.dither_intensity = 0.0")
        commands.append(("blender", "-noaudio", "-b", request.blend, "-S", scene.name, "-o", pattern, "-F", "PNG",
                         "--python-exit-code", "2", "--python-expr", border, "-f", str(frame)))
        parts.append((top, bottom, str(frame_path(pattern, frame, ".png", blend_dir))))
    target = str(frame_path(f"{{output}}/{stem}_####", frame, ".png", blend_dir))
    common = {"priority": request.priority, "requires": (Requirement("blender"), *request.requires),
              "max_attempts": request.max_attempts, "timeout": request.timeout, "submitted": submitted,
              "extra": {"runner": "blender"}, **request.policy.chunk_fields()}
    fields = {"source": request.blend, "scene": scene.name, "owner": request.owner,
              "status": "paused" if request.paused else "active", "requires": [str(r) for r in common["requires"]]}
    return _strip_job(job_id, "blender-tiles", commands, parts, target, (width, height), common, fields,
                      request.policy)


# ---- POV-Ray ------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PovJobRequest(JobOptions):
    """What `render add SCENE.pov` asks for: a still, an animation's frames, or one frame in strips."""

    scene: str  # as the nodes will see it (absolute, or relative to the spool)
    width: int = 640
    height: int = 480
    frames: FrameRange | None = None  # an animation: the clock runs over these frames as +KFI/+KFF set it
    frame: int | None = None  # with `strips`: the frame of the animation to render
    strips: int | None = None


def plan_pov_job(request: PovJobRequest, job_id: str, submitted: str) -> Plan:
    """Chunks of frames (or strips of one frame) with POV-Ray's own options, then the stitch and end steps."""
    stem = job_stem(PurePath(request.scene).stem)
    size = (f"+W{request.width}", f"+H{request.height}")
    folder = str(PurePath(request.scene).parent)
    # POV-Ray runs in the spool folder: +L lets the scene's #include files next to it be found
    base = ("povray", f"+I{request.scene}", *((f"+L{folder}",) if folder != "." else ()))
    quiet = ("-D", "-GA", "+FN")  # no display window, no console chatter beyond progress, PNG
    requires = (Requirement("povray"), *request.requires)
    common = {"priority": request.priority, "requires": requires, "max_attempts": request.max_attempts,
              "timeout": request.timeout, "submitted": submitted, "extra": {"runner": "povray"},
              **request.policy.chunk_fields()}
    fields = {"source": request.scene, "owner": request.owner, "status": "paused" if request.paused else "active",
              "requires": [str(r) for r in requires]}
    frames = request.frames
    if request.strips:
        clock: tuple[str, ...] = ()
        if request.frame is not None:
            span = frames or FrameRange(request.frame, request.frame)
            clock = (f"+KFI{span.start}", f"+KFF{span.last}", f"+SF{request.frame}", f"+EF{request.frame}")
        commands, parts = [], []
        for index, (top, bottom) in enumerate(split_rows(request.height, request.strips), start=1):
            command = (*base, f"+O{{output}}/strips/{stem}_s{index:02d}.png", *size, f"+SR{top + 1}", f"+ER{bottom}",
                       *clock, *quiet)
            commands.append(command)
            parts.append((top, bottom, str(frame_files(read_pov_args(list(command)))[0])))
        whole = (*base, f"+O{{output}}/{stem}.png", *clock)
        target = str(frame_files(read_pov_args(list(whole)))[0])
        return _strip_job(job_id, "povray-strips", commands, parts, target, (request.width, request.height),
                          common, fields, request.policy)
    output = f"+O{{output}}/{stem}.png"
    if frames is None:  # a still: one chunk
        chunks = [(chunk_name(job_id, 1, 1), InfoFile(command=(*base, output, *size, *quiet), job=job_id, **common))]
    else:
        span = ("+SF{start}", "+EF{end}") if frames.step == 1 else ("+SF{frame}", "+EF{frame}")
        command = (*base, output, *size, f"+KFI{frames.start}", f"+KFF{frames.last}", *span, *quiet)
        ranges = split_frames(frames, request.chunk_size)
        chunks = [(chunk_name(job_id, index, len(ranges)), InfoFile(command=command, frames=part, job=job_id, **common))
                  for index, part in enumerate(ranges, start=1)]
    job = Job(id=job_id, kind="povray", frames=str(frames) if frames else "", chunk_size=request.chunk_size,
              chunks=len(chunks), priority=request.priority, submitted=submitted, output=f"{{output}}/{stem}.png",
              settings={"size": [request.width, request.height], **request.policy.job_settings()}, **fields)
    return job, chunks, [end_step(job_id, [], request.priority, submitted, request.policy)]


# ---- scripts and RenderMan ----------------------------------------------------------------------------


def script_job(base: CommandJobRequest, path: str) -> CommandJobRequest:
    """A Python script run on a node with Python, the chunk's frames as its arguments."""
    command = ("python3", path, "{frame_args}") if base.frames else ("python3", path)
    return replace(base, command=command, requires=(Requirement("python"), *base.requires))


def rib_job(base: CommandJobRequest, path: str) -> CommandJobRequest:
    """A RenderMan .rib file for `prman`, only on the nodes that have it (one chunk: the file's own frames)."""
    return replace(base, command=("prman", "-progress", path), frames=None,
                   requires=(Requirement("prman"), *base.requires))
