"""The one place that starts a render process, streams its output and kills its whole tree.

A render runs in its own session (so its process group is its own to signal), at the lowest CPU
and I/O priority, with its output on a pipe that the daemon drains into the chunk's log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable

import psutil

LOWEST_NICE = 19


class StartError(Exception):
    """The command could not be started at all (not found, not executable)."""


class RenderProcess:
    """One running command. Not thread-safe: owned by the daemon's main loop."""

    def __init__(self, argv: list[str], cwd: str | None = None, env: dict[str, str] | None = None):
        try:
            self.popen = subprocess.Popen(
                argv,
                stdin=_devnull(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        except FileNotFoundError:
            raise StartError(f"command not found: {argv[0]}") from None
        except PermissionError:
            raise StartError(f"not executable: {argv[0]}") from None
        except OSError as error:
            raise StartError(f"cannot start {argv[0]}: {error.strerror}") from None
        self.pid = self.popen.pid
        self.started = lower_priority(self.pid)
        assert self.popen.stdout is not None
        self.stdout = self.popen.stdout
        os.set_blocking(self.stdout.fileno(), False)
        self.eof = False
        self._tree: list[psutil.Process] = []

    def fileno(self) -> int:
        return self.stdout.fileno()

    def read(self) -> bytes:
        """What the process has written since the last read (b'' at end of output)."""
        chunks = []
        while True:
            try:
                data = os.read(self.stdout.fileno(), 65536)
            except BlockingIOError:
                break
            if not data:
                self.eof = True
                break
            chunks.append(data)
        return b"".join(chunks)

    def poll(self) -> int | None:
        return self.popen.poll()

    def finish(self) -> int:
        """Reap the process, close its pipe and kill anything it left behind in its group."""
        code = self.popen.wait()
        kill_group(self.pid, signal.SIGKILL)
        for process in self._tree:
            with contextlib.suppress(psutil.Error):
                process.kill()
        self.stdout.close()
        return code

    def terminate(self) -> None:
        """Ask the whole tree to stop (SIGTERM); `kill` follows if it has not after a grace period."""
        self._tree = _descendants(self.pid, self.started)
        kill_group(self.pid, signal.SIGTERM)
        kill_group(self.pid, signal.SIGCONT)  # a paused (SIGSTOPped) render must wake to see the SIGTERM
        for process in self._tree:
            with contextlib.suppress(psutil.Error):
                process.terminate()

    def kill(self) -> None:
        self._tree = [*self._tree, *_descendants(self.pid, self.started)]
        kill_group(self.pid, signal.SIGKILL)
        for process in self._tree:
            with contextlib.suppress(psutil.Error):
                process.kill()


def _descendants(pid: int, started: float | None) -> list[psutil.Process]:
    leader = same_process(pid, started)
    if leader is None:
        return []
    try:
        return leader.children(recursive=True)
    except psutil.Error:
        return []


_DEVNULL: list[int] = []


def _devnull() -> int:
    """One read-only /dev/null for every render's stdin, instead of an open and close per start."""
    if not _DEVNULL:
        _DEVNULL.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    return _DEVNULL[0]


def lower_priority(pid: int) -> float | None:
    """Nice 19 and the idle I/O class, so the person at the desk barely notices; returns the start time.

    Children inherit both, so everything the render starts afterwards runs as low.
    """
    with contextlib.suppress(OSError):  # first and on its own: nothing else may keep the render at nice 0
        os.setpriority(os.PRIO_PROCESS, pid, LOWEST_NICE)
    try:
        process = psutil.Process(pid)
        if hasattr(psutil, "IOPRIO_CLASS_IDLE"):
            process.ionice(psutil.IOPRIO_CLASS_IDLE)
        return process.create_time()
    except (psutil.Error, OSError):
        return None  # it has already exited


def same_process(pid: int, started: float | None) -> psutil.Process | None:
    """The live process `pid`, if it is the one that started at `started` (pids get reused)."""
    try:
        process = psutil.Process(pid)
        if started is not None and abs(process.create_time() - started) > 1.0:
            return None
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except psutil.Error:
        return None


def kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def kill_tree(pid: int, started: float | None, grace: float) -> None:
    """Stop a process that is not our child (an orphaned render) and everything it started.

    The tree is collected before signalling: once the leader dies its children are re-parented
    and can no longer be found from it.
    """
    leader = same_process(pid, started)
    tree = [] if leader is None else [leader, *_descendants(pid, started)]
    kill_group(pid, signal.SIGTERM)
    for process in tree:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    alive_after = _wait_gone(tree, grace)
    kill_group(pid, signal.SIGKILL)
    for process in alive_after:
        with contextlib.suppress(psutil.Error):
            process.kill()
    _wait_gone(alive_after, 2.0)


def _wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until none of `processes` runs; returns those still running after `timeout`.

    A zombie counts as gone: an orphan's zombie waits for init to reap it, which may take a while
    (or, under a minimal init, forever), and it runs nothing.
    """
    deadline = time.monotonic() + timeout
    while True:
        running = [p for p in processes if _runs(p)]
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(0.05)


def _runs(process: psutil.Process) -> bool:
    try:  # is_running() also checks the start time, so a reused pid does not count
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def find_orphans(
    spool_id: str, host: str, daemon_alive: Callable[[int, float | None], bool]
) -> list[psutil.Process]:
    """Renders of this spool whose daemon is dead, found by the marks every render carries in its environment.

    The marks survive any crash of the daemon (nothing has to be written first), which is why they,
    not a record in the spool, are how a restarted daemon finds what its predecessor left running.
    """
    orphans = []
    for process in psutil.process_iter():
        try:
            env = process.environ()
        except psutil.Error:
            continue
        if env.get("RENDERD_SPOOL") != spool_id or env.get("RENDERD_HOST") != host or "RENDERD_DAEMON_PID" not in env:
            continue
        try:
            daemon_pid = int(env["RENDERD_DAEMON_PID"])
            daemon_started = float(env.get("RENDERD_DAEMON_STARTED") or 0) or None
        except ValueError:
            continue
        if not daemon_alive(daemon_pid, daemon_started):
            orphans.append(process)
    return orphans


def process_usage(pid: int) -> dict[str, float]:
    """Resident memory (bytes) and CPU percent of a render and all its children."""
    try:
        leader = psutil.Process(pid)
        tree = [leader, *leader.children(recursive=True)]
    except psutil.Error:
        return {}
    rss, cpu = 0, 0.0
    now = time.time()
    for process in tree:
        with contextlib.suppress(psutil.Error):
            rss += process.memory_info().rss
            times = process.cpu_times()
            cpu += 100 * (times.user + times.system) / max(0.1, now - process.create_time())
    return {"rss": rss, "cpu_percent": round(cpu, 1)}  # CPU: the average over each process's life


def alive(pid: int, started: float | None) -> bool:
    return same_process(pid, started) is not None
