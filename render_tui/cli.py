"""`render`: plan jobs and look at the farm from any machine that sees the spool."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from render_tui import actions
from render_tui.client import live_records
from renderd.blendfile import BlendError, BlendInfo, read_blend
from renderd.errors import InfoFileError, RenderdError, SpoolError, UsageError
from renderd.infofiles.format import (
    HOOK_NAMES,
    FrameRange,
    InfoFile,
    KeyProblem,
    OutputChecks,
    Requirement,
    dump,
    parse,
    parse_duration,
    parse_hooks,
    parse_size,
)
from renderd.infofiles.spool import Spool, default_spool, now_text
from renderd.planning import (
    VIDEO_CONTAINERS,
    BlendJobRequest,
    CommandJobRequest,
    JobPolicy,
    PovJobRequest,
    job_stem,
    plan_command_job,
    plan_pov_job,
    rib_job,
    script_job,
)
from renderd.status import summarize_nodes


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--spool", type=Path, default=argparse.SUPPRESS,
                        help="the spool folder (default: $RENDERD_SPOOL, else a per-user folder)")
    parser = argparse.ArgumentParser(prog="render", description="Plan and watch render farm jobs.", parents=[common])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    add = commands.add_parser("add", parents=[common], help="plan a job and queue its chunks")
    add.add_argument("file", nargs="?", help="the scene to render")
    add.add_argument("--cmd", help="any command line, with {start} {end} {frame} {frames} {step} placeholders")
    add.add_argument("--frames", help="A-B, A-B:STEP or one frame")
    add.add_argument("--chunk", type=int, default=10, help="frames per chunk (default 10)")
    add.add_argument("--priority", type=int, default=50, help="higher runs first (default 50)")
    add.add_argument("--requires", default="", help="capabilities a node needs, comma-separated (blender>=4.2,...)")
    add.add_argument("--tags", default="", help="node tags the job needs, comma-separated")
    add.add_argument("--timeout", help="seconds (or 90m, 2h) one attempt at a chunk may take")
    add.add_argument("--max-attempts", type=int, default=3, help="attempts per chunk before it fails (default 3)")
    add.add_argument("--paused", action="store_true", help="queue the job paused")
    add.add_argument("--owner", help="who the job belongs to (default: user@host)")
    add.add_argument("--name", help="job name (the id is NAME-xxxx; default from the file or command)")
    add.add_argument("--scene", help=".blend: the scene to render (default: the file's active scene)")
    add.add_argument("--all-scenes", action="store_true", help=".blend: one job per scene")
    add.add_argument("--output", help=".blend: output pattern, Blender's # syntax (default: the spool's output/JOB/)")
    add.add_argument("--format", default="PNG", help=".blend: image format for Blender's -F (default PNG)")
    add.add_argument("--video", choices=VIDEO_CONTAINERS, help=".blend: make a video of the frames when all are done")
    add.add_argument("--overwrite", action="store_true", help=".blend: render frames again even if they exist")
    add.add_argument("--outputs", help="--cmd: the files each frame writes (# for the frame number), to be checked")
    add.add_argument("--width", type=int, help=".pov: image width (default 640)")
    add.add_argument("--height", type=int, help=".pov: image height (default 480)")
    add.add_argument("--strips", type=int, help=".pov: render one frame as N horizontal strips on N nodes, "
                                                "then stitch them")
    add.add_argument("--tiles", type=int, help=".blend: render one frame (--frame) as N horizontal tiles on N "
                                               "nodes, then stitch them")
    add.add_argument("--frame", type=int, help="with --tiles or --strips: the frame to split (default: the first)")
    add.add_argument("--hook", action="append", default=[], metavar="STAGE=COMMAND",
                     help="run COMMAND at STAGE: pre (before each chunk), post (after each), end (once, after "
                          "the last), error (once per chunk that fails for good); repeatable")
    add.add_argument("--min-size", help="each frame must be at least this large (20k, 1M)")
    add.add_argument("--reject-black", action="store_true", help="fail a chunk that writes an all-black frame")
    add.add_argument("--reject-transparent", action="store_true",
                     help="fail a chunk that writes an all-transparent frame")
    add.add_argument("--memory", help="free memory a chunk needs (8G): nodes with less do not take it")
    add.add_argument("--max-failed-chunks", type=int,
                     help="chunks failed for good before the job is failed (default: the farm's, 3)")

    info = commands.add_parser("info", parents=[common], help="the scenes of a .blend file, read without Blender")
    info.add_argument("file", help="the .blend file")
    info.add_argument("--json", action="store_true", help="print JSON for scripts")

    jobs = commands.add_parser("jobs", parents=[common], help="jobs and their frames done, running, queued, failed")
    jobs.add_argument("--json", action="store_true", help="print JSON for scripts")

    nodes = commands.add_parser("nodes", parents=[common], help="the daemons and what they are doing")
    nodes.add_argument("--json", action="store_true", help="print JSON for scripts")

    priority = commands.add_parser("priority", parents=[common], help="change a job's priority (higher first)")
    priority.add_argument("job")
    priority.add_argument("priority", type=int)
    for name, text in (("pause", "start no new chunk of a job"), ("resume", "let a paused job run again"),
                       ("cancel", "cancel a job: drop its queued chunks, stop its running renders"),
                       ("retry", "put a job's failed chunks back in the queue"),
                       ("rm", "remove a finished or cancelled job's records (never its frames)")):
        commands.add_parser(name, parents=[common], help=text).add_argument("job")
    logs = commands.add_parser("log", parents=[common], help="the logs of a job's chunks (every attempt)")
    logs.add_argument("job")
    logs.add_argument("chunk", nargs="?", help="one chunk: c0003, or its full name")
    commands.add_parser("tui", parents=[common], help="the Textual front-end (also plain `render`)")
    node = commands.add_parser("node", parents=[common], help="control one daemon over its socket")
    node.add_argument("action", choices=("pause", "resume", "drain", "kill"))
    node.add_argument("name")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in (None, "tui"):
        return run_tui(Spool(getattr(args, "spool", None) or default_spool()))
    try:
        spool = Spool(getattr(args, "spool", None) or default_spool())
        handlers = {"add": cmd_add, "jobs": cmd_jobs, "nodes": cmd_nodes, "info": cmd_info, "priority": cmd_priority,
                    "pause": cmd_pause, "resume": cmd_resume, "cancel": cmd_cancel, "retry": cmd_retry, "rm": cmd_rm,
                    "log": cmd_log, "node": cmd_node}
        return handlers[args.command](spool, args)
    except (UsageError, InfoFileError, SpoolError, BlendError) as error:
        print(f"render: {error}", file=sys.stderr)
        return 2
    except RenderdError as error:
        print(f"render: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


def run_tui(spool: Spool) -> int:
    if not spool.exists():
        print(f"render: {spool.root}: no spool here (start renderd or `render add` to create one)", file=sys.stderr)
        return 2
    from render_tui.app import RenderApp  # Textual only for the front-end, not for the commands

    RenderApp(spool).run()
    return 0


# ---- add -------------------------------------------------------------------------------------------


def cmd_add(spool: Spool, args: argparse.Namespace) -> int:
    if args.cmd:
        if args.file:
            raise UsageError(f"add: give a file or --cmd, not both ({args.file})")
        return add_command(spool, args, _command_request(args, args.cmd), _first_word(args.cmd))
    if not args.file:
        raise UsageError("add: give a .blend, .pov, .py or .rib file, or --cmd 'COMMAND'")
    adders = {".blend": add_blend, ".pov": add_pov, ".py": add_script, ".rib": add_rib}
    suffix = Path(args.file).suffix.lower()
    if suffix not in adders:
        raise UsageError(f"{args.file}: renderd plans {', '.join(adders)} files and --cmd command lines")
    if suffix != ".blend" and not Path(args.file).is_file():
        raise UsageError(f"{args.file}: no such file")
    if suffix not in (".blend", ".pov") and (args.tiles or args.strips or args.frame is not None):
        raise UsageError(f"{args.file}: --tiles, --strips and --frame split the frames of .blend and .pov files")
    return adders[suffix](spool, args)


def _options(args: argparse.Namespace) -> dict:
    """The options every kind of job takes (JobOptions' fields), checked."""
    return {
        "chunk_size": _positive("--chunk", args.chunk),
        "priority": args.priority,
        "requires": _requirements(args.requires, args.tags),
        "max_attempts": _positive("--max-attempts", args.max_attempts),
        "timeout": _timeout_option(args.timeout),
        "paused": args.paused,
        "owner": args.owner or f"{getpass.getuser()}@{socket.gethostname()}",
        "policy": _job_policy(args),
    }


def _command_request(args: argparse.Namespace, command: str | tuple[str, ...]) -> CommandJobRequest:
    return CommandJobRequest(command=command, frames=_frames_option(args.frames), outputs=args.outputs,
                             **_options(args))


def add_command(spool: Spool, args: argparse.Namespace, request: CommandJobRequest, stem: str) -> int:
    # read the command back the way a daemon will, so a mistake fails here and not on every node
    parse(dump(InfoFile(command=request.command, frames=request.frames)), "--cmd")
    spool.ensure()
    job_id = actions.create_job(spool, job_stem(args.name or stem),
                                lambda job_id: plan_command_job(request, job_id, now_text()))
    print(job_id)
    frames = f" covering frames {request.frames}" if request.frames else ""
    state = "paused" if args.paused else "queued"
    needs = ", ".join(str(req) for req in request.requires)
    print(f"render: job {job_id}{frames} {state} in {spool.root}" + (f" (needs {needs})" if needs else ""),
          file=sys.stderr)
    return 0


def add_script(spool: Spool, args: argparse.Namespace) -> int:
    """`render add SCRIPT.py`: runs with python3 on nodes that have Python, the chunk's frames as arguments."""
    path = actions.node_path(spool, Path(args.file))
    return add_command(spool, args, script_job(_command_request(args, ""), path), Path(args.file).stem)


def add_rib(spool: Spool, args: argparse.Namespace) -> int:
    """`render add SCENE.rib`: RenderMan's prman, on the nodes that have it."""
    if args.frames:
        raise UsageError(f"{args.file}: a .rib file holds its own frames; --frames does not apply")
    path = actions.node_path(spool, Path(args.file))
    return add_command(spool, args, rib_job(_command_request(args, ""), path), Path(args.file).stem)


def add_pov(spool: Spool, args: argparse.Namespace) -> int:
    """`render add SCENE.pov`: a still, frames of an animation (--frames), or one frame in --strips."""
    if args.tiles:
        raise UsageError("--tiles: for .blend files; a .pov frame is split with --strips N")
    width, height = _positive("--width", args.width or 640), _positive("--height", args.height or 480)
    if args.strips is not None and not 1 <= args.strips <= height:
        raise UsageError(f"--strips: must be 1 to the image's {height} rows, got {args.strips}")
    if args.frame is not None and not args.strips:
        raise UsageError("--frame: renders one frame in strips; give --strips N (or --frames F for one frame)")
    if args.strips and args.frames and args.frame is None:
        raise UsageError("--strips with --frames: say which frame of the animation to split with --frame F")
    request = PovJobRequest(
        scene=actions.node_path(spool, Path(args.file)), width=width, height=height,
        frames=_frames_option(args.frames), frame=args.frame, strips=args.strips, **_options(args),
    )
    if request.frames and request.frame is not None and request.frame not in request.frames.frames:
        raise UsageError(f"--frame {request.frame} is not one of the animation's frames {request.frames}")
    spool.ensure()
    job_id = actions.create_job(spool, job_stem(args.name or Path(args.file).stem),
                                lambda job_id: plan_pov_job(request, job_id, now_text()))
    print(job_id)
    what = (f"{args.strips} strips" + (f" of frame {args.frame}" if args.frame is not None else "") if args.strips
            else f"frames {request.frames}" if request.frames else "a still")
    print(f"render: job {job_id}: {what}, {width}x{height}, queued in {spool.root}", file=sys.stderr)
    return 0


def add_blend(spool: Spool, args: argparse.Namespace) -> int:
    """`render add FILE.blend`: one job per scene (the active one, --scene, or --all-scenes)."""
    blend = read_blend(args.file)
    warn_missing(blend)
    scenes = actions.choose_scenes(blend, "*" if args.all_scenes else args.scene)
    if args.strips:
        raise UsageError("--strips: for .pov files; a .blend frame is split with --frame F --tiles N")
    if args.tiles is not None:
        if len(scenes) > 1:
            raise UsageError("--tiles: one scene at a time (give --scene)")
        if not 1 <= args.tiles <= scenes[0].height:
            raise UsageError(f"--tiles: must be 1 to the frame's {scenes[0].height} rows, got {args.tiles}")
    elif args.frame is not None:
        raise UsageError("--frame: renders one frame in tiles; give --tiles N (or --frames F for one frame)")
    template = BlendJobRequest(
        blend="", scene=scenes[0], frames=_frames_option(args.frames), output=args.output,
        file_format=args.format.upper(), video=args.video, overwrite=args.overwrite, frame=args.frame,
        tiles=args.tiles, **_options(args),
    )
    for job_id, scene in actions.add_blend(spool, Path(args.file), scenes, template, args.name):
        print(job_id)
        frames = (f"frame {args.frame if args.frame is not None else scene.frame_start} in {args.tiles} tiles"
                  if args.tiles else f"frames {template.frames or scene.frames}")
        print(f"render: job {job_id}: scene {scene.name}, {frames}, "
              f"{scene.width}x{scene.height} {scene.engine}, queued in {spool.root}", file=sys.stderr)
    return 0


def warn_missing(blend: BlendInfo) -> None:
    for asset in blend.missing:
        print(f"render: warning: {blend.path}: missing {asset.kind} {asset.path!r} "
              f"(used by {asset.block}; looked for {asset.resolved})", file=sys.stderr)


def cmd_info(spool: Spool, args: argparse.Namespace) -> int:
    blend = read_blend(args.file)
    if args.json:
        print(json.dumps(blend.to_dict(), indent=1))
        return 0
    compression = f", {blend.compression}" if blend.compression else ""
    print(f"{blend.path}: Blender {blend.version} file{compression}, {len(blend.scenes)} scene(s)")
    rows = [["", "SCENE", "FRAMES", "ENGINE", "SIZE", "FPS", "FORMAT", "OUTPUT"]]
    for scene in blend.scenes:
        rows.append(["*" if scene.active else "", scene.name, scene.frames, scene.engine,
                     f"{scene.resolution_x}x{scene.resolution_y} {scene.resolution_percentage}%", f"{scene.fps:g}",
                     scene.file_format, scene.output])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    warn_missing(blend)
    return 0


def _first_word(command: str) -> str:
    import shlex

    try:
        words = shlex.split(command)
    except ValueError as error:
        raise UsageError(f"--cmd: cannot split into arguments: {error}") from None
    if not words:
        raise UsageError("--cmd: the command is empty")
    return os.path.basename(words[0])


def _frames_option(text: str | None) -> FrameRange | None:
    if text is None:
        return None
    try:
        return FrameRange.parse(text)
    except ValueError as error:
        raise UsageError(f"--frames: {error}") from None


def _positive(option: str, value: int) -> int:
    if value < 1:
        raise UsageError(f"{option}: must be 1 or more, got {value}")
    return value


def _timeout_option(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as error:
        raise UsageError(f"--timeout: {error}") from None


def _job_policy(args: argparse.Namespace) -> JobPolicy:
    """Hooks, output checks, the memory hint and the failure limit from `render add`'s options."""
    hooks: dict[str, str | tuple[str, ...]] = {}
    for item in args.hook:
        stage, equals, command = item.partition("=")
        if not equals or not command.strip():
            raise UsageError(f"--hook: expected STAGE=COMMAND (stages: {', '.join(HOOK_NAMES)}), got {item!r}")
        hooks[stage.strip()] = command
    try:
        parsed = parse_hooks(hooks, "--hook")
    except KeyProblem as problem:
        raise UsageError(f"{problem.key}: {problem.message}") from None
    sizes = {}
    for option, text in (("--min-size", args.min_size), ("--memory", args.memory)):
        try:
            sizes[option] = parse_size(text) if text is not None else None
        except ValueError as error:
            raise UsageError(f"{option}: {error}") from None
    if args.max_failed_chunks is not None:
        _positive("--max-failed-chunks", args.max_failed_chunks)
    checks = OutputChecks(sizes["--min-size"], args.reject_black or None, args.reject_transparent or None)
    return JobPolicy(hooks=parsed, checks=checks, memory=sizes["--memory"], max_failed_chunks=args.max_failed_chunks)


def _requirements(requires: str, tags: str) -> tuple[Requirement, ...]:
    items = [item.strip() for item in f"{requires},{tags}".split(",") if item.strip()]
    try:
        return tuple(Requirement.parse(item) for item in items)
    except ValueError as error:
        raise UsageError(f"--requires: {error}") from None


# ---- jobs and nodes ---------------------------------------------------------------------------------


def cmd_jobs(spool: Spool, args: argparse.Namespace) -> int:
    summaries, invalid, _nodes = actions.read_farm(spool)
    if args.json:
        print(json.dumps({"jobs": [s.to_dict() for s in summaries],
                          "invalid": [{"path": i.path, "reason": i.reason} for i in invalid]}, indent=1))
        return 0
    if not summaries and not invalid:
        print("no jobs")
        return 0
    rows = [["JOB", "STATUS", "PRI", "DONE", "RUN", "QUEUED", "FAILED", "TOTAL", "ELAPSED", "ETA", "OWNER"]]
    notes: dict[int, list[str]] = {}
    for summary in summaries:
        rows.append([
            summary.id, summary.status, str(summary.priority if summary.priority is not None else ""),
            str(summary.done), str(summary.running), str(summary.queued), str(summary.failed), str(summary.total),
            _duration_text(summary.elapsed), _duration_text(summary.eta), summary.owner or "",
        ])
        lines = summary.notes()
        if summary.cancelled and summary.status != "cancelled":
            lines.append(f"{summary.cancelled} frame(s) cancelled (info files deleted)")
        notes[len(rows) - 1] = lines
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        for line in notes.get(index, []):
            print(f"    {line}")
    for problem in invalid:
        print(f"invalid: {problem.reason}")
    return 0


def cmd_nodes(spool: Spool, args: argparse.Namespace) -> int:
    if not spool.exists():
        raise SpoolError(f"{spool.root}: no spool here (start renderd to create one)")
    nodes = summarize_nodes(live_records(spool.list_nodes(), actions.known_token(spool)), time.time(),
                            actions.pid_check)
    if args.json:
        print(json.dumps([node.to_dict() for node in nodes], indent=1))
        return 0
    if not nodes:
        print("no nodes")
        return 0
    rows = [["NODE", "HOST", "STATE", "JOB", "FRAMES", "PROGRESS", "CPU", "LOAD", "MEMORY", "SWAP", "SEEN"]]
    notes: dict[int, str] = {}
    for node in nodes:
        if node.note:
            notes[len(rows)] = node.note
        rows.append([
            node.name, node.host, node.state, node.chunk or "", node.frames or "", node.progress or "",
            "" if node.cpu_percent is None else f"{node.cpu_percent:.0f}%",
            " ".join(f"{value:.2f}" for value in node.load[:1]),
            _usage(node.memory.get("used"), node.memory.get("total")),
            _usage(node.swap.get("used"), node.swap.get("total")),
            "" if node.last_seen is None else f"{_duration_text(node.last_seen)} ago",
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index in notes:
            print(f"    {notes[index]}")
    return 0


def _usage(used: int | None, total: int | None) -> str:
    if used is None or not total:
        return ""
    return f"{used / 2**30:.1f}/{total / 2**30:.1f}G"


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


# ---- managing jobs and nodes (the work is in render_tui/actions.py, shared with the TUI) ---------------


def _reporting(action: Callable[[Spool, argparse.Namespace], str]) -> Callable[[Spool, argparse.Namespace], int]:
    """A command that does one action and prints its one-line report."""

    def command(spool: Spool, args: argparse.Namespace) -> int:
        print(action(spool, args))
        return 0

    return command


cmd_priority = _reporting(lambda spool, args: actions.set_priority(spool, args.job, args.priority))
cmd_pause = _reporting(lambda spool, args: actions.pause_job(spool, args.job))
cmd_resume = _reporting(lambda spool, args: actions.resume_job(spool, args.job))
cmd_retry = _reporting(lambda spool, args: actions.retry_job(spool, args.job))
cmd_rm = _reporting(lambda spool, args: actions.remove_job(spool, args.job))
cmd_node = _reporting(lambda spool, args: actions.node_command(spool, args.name, args.action))


def cmd_cancel(spool: Spool, args: argparse.Namespace) -> int:
    message, late = actions.cancel_job(spool, args.job)
    print(message)
    if late:
        print(f"render: {', '.join(late)} did not answer; they stop at their next heartbeat", file=sys.stderr)
    return 0


def cmd_log(spool: Spool, args: argparse.Namespace) -> int:
    job = actions.find_job(spool, args.job)
    folder = spool.logs / job.id
    logs = sorted(folder.glob("*.log")) if folder.is_dir() else []
    if args.chunk:
        wanted = args.chunk if args.chunk.startswith(job.id) else f"{job.id}-{args.chunk}"
        logs = [log for log in logs if log.name.startswith(f"{wanted}.")]
        if not logs:
            raise UsageError(f"{args.chunk}: no log for that chunk of {job.id}")
    if not logs:
        print(f"render: job {job.id} has no logs yet", file=sys.stderr)
    for log in logs:
        print(f"==> {log.relative_to(spool.root)} <==")
        sys.stdout.write(log.read_text(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
