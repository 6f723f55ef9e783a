"""`renderd`: the daemon's command line. Parses options once into a frozen config and runs the loop."""

from __future__ import annotations

import argparse
import logging
import re
import socket
import sys
from pathlib import Path

from renderd.daemon import Daemon, DaemonConfig
from renderd.errors import SpoolError
from renderd.hours import HoursError, WorkHours
from renderd.infofiles.format import parse_duration, parse_size
from renderd.infofiles.spool import Spool, default_spool
from renderd.node import detect_capabilities
from renderd.settings import HOURS_END

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="renderd", description="Render farm daemon: takes chunks from the spool and runs them."
    )
    parser.add_argument("--spool", type=Path, help="the shared spool folder (default: $RENDERD_SPOOL, else per user)")
    parser.add_argument("--name", help="node name (default: host name); lets several daemons share a host")
    parser.add_argument("--host", help="host name recorded in the spool (default: this machine's)")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between looks at the queue (default 0.5)")
    parser.add_argument("--lease", type=float, default=60.0,
                        help="seconds without a heartbeat before another host takes a chunk back (default 60)")
    parser.add_argument("--tags", default="", help="comma-separated tags this node offers as capabilities")
    parser.add_argument("--exit-when-idle", action="store_true", help="exit once nothing in the spool is runnable here")
    parser.add_argument("--heartbeat", type=float, default=5.0, help="seconds between heartbeats (default 5)")
    parser.add_argument("--grace", type=float, default=10.0,
                        help="seconds a stopped render gets between SIGTERM and SIGKILL (default 10)")
    parser.add_argument("--port", type=int, default=0, help="status and control socket port (default 0: any free)")
    parser.add_argument("--bind", default="0.0.0.0", help="address the socket listens on (default all)")
    parser.add_argument("--private", action="store_true", help="status, too, needs the farm's token")
    parser.add_argument("--no-socket", action="store_true", help="serve no status socket")
    share = parser.add_argument_group("sharing the workstation (default: the node's section of SPOOL/settings.yaml)")
    share.add_argument("--hours", help="take work only in these hours: 19:00-08:00, always, never")
    share.add_argument("--hours-end", choices=HOURS_END,
                       help="when the hours end: finish the chunk in hand (default) or suspend it until they resume")
    share.add_argument("--cpu-share", type=float,
                       help="step aside (suspend the render) while other processes use more than this share of the "
                            "CPUs, 0-1")
    share.add_argument("--min-memory", help="step aside, and take nothing new, while available memory is below this "
                                            "(2G)")
    share.add_argument("--quiet-for", help="seconds of quiet before a suspended render resumes (default 30)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    host = args.host or socket.gethostname()
    name = args.name or host.split(".")[0]
    problems = []
    if not NAME_RE.match(name):
        problems.append(f"--name: {name!r} is not a usable node name (letters, digits, '.', '_', '-')")
    if args.poll <= 0 or args.lease <= 0 or args.heartbeat <= 0 or args.grace < 0:
        problems.append("--poll, --lease and --heartbeat must be positive, --grace zero or more")
    if not 0 <= args.port <= 65535:
        problems.append(f"--port: {args.port} is not a port number")
    if args.heartbeat * 2 > args.lease:
        problems.append(f"--lease {args.lease:g} must be at least twice --heartbeat {args.heartbeat:g}")
    hours = min_available = quiet_for = None
    try:
        hours = WorkHours.parse(args.hours) if args.hours is not None else None
        min_available = parse_size(args.min_memory) if args.min_memory is not None else None
        quiet_for = parse_duration(args.quiet_for) if args.quiet_for is not None else None
    except HoursError as error:
        problems.append(f"--hours: {error}")
    except ValueError as error:
        option = "--min-memory" if min_available is None and args.min_memory is not None else "--quiet-for"
        problems.append(f"{option}: {error}")
    if args.cpu_share is not None and not 0 < args.cpu_share <= 1:
        problems.append(f"--cpu-share: must be a share between 0 and 1 (0.5: half), got {args.cpu_share:g}")
    if problems:
        for problem in problems:
            print(f"renderd: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format=f"%(asctime)s {name} %(levelname)s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        stream=sys.stderr,
    )
    tags = tuple(tag.strip() for tag in args.tags.split(",") if tag.strip())
    try:
        spool = Spool(args.spool or default_spool()).ensure()
    except SpoolError as error:
        print(f"renderd: {error}", file=sys.stderr)
        return 2
    config = DaemonConfig(
        spool=spool.root,
        name=name,
        host=host,
        poll=args.poll,
        lease=args.lease,
        tags=tags,
        exit_when_idle=args.exit_when_idle,
        heartbeat=args.heartbeat,
        grace=args.grace,
        capabilities=detect_capabilities(list(tags)),
        port=None if args.no_socket else args.port,
        bind=args.bind,
        private=args.private,
        token=spool.token(),
        hours=hours,
        hours_end=args.hours_end,
        cpu_share=args.cpu_share,
        min_available=min_available,
        quiet_for=quiet_for,
    )
    try:
        return Daemon(config, spool).run()
    except OSError as error:  # the socket could not be bound: the port is taken, or the address not ours
        print(f"renderd: --port {args.port} --bind {args.bind}: {error.strerror or error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
