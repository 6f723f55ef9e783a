"""The renderd loop: scan -> choose -> claim -> run -> record, with heartbeats, on one thread.

One `select` waits on the render's output pipe and on a wake-up pipe that signal handlers write
to, so the loop reacts at once to output, to the render's exit and to SIGINT/SIGTERM, while
handlers themselves only count signals.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import selectors
import shlex
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import psutil

from renderd.errors import InfoFileError, RunnerError
from renderd.hours import WorkHours
from renderd.infofiles import format as fmt
from renderd.infofiles.format import Attempt, Claim, InfoFile
from renderd.infofiles.records import Completion, Job, NodeRecord
from renderd.infofiles.spool import LOOSE, Entry, Held, PlannedChunk, Signature, Spool, now_text
from renderd.mail import (
    ChunkFailure,
    JobFacts,
    MailError,
    MailSettings,
    failed_message,
    finished_message,
    log_tail,
    send,
)
from renderd.node import system_figures
from renderd.pressure import PressureGate, PressurePolicy, UsageSampler
from renderd.runner import Runner, runner_for
from renderd.runner.images import check_content
from renderd.runner.process import (
    RenderProcess,
    StartError,
    alive,
    find_orphans,
    kill_group,
    kill_tree,
    process_usage,
)
from renderd.scheduling import Candidate, can_run, runnable
from renderd.server import Board, StatusServer
from renderd.settings import FarmSettings, NodeSettings, parse_settings
from renderd.status import node_state

log = logging.getLogger("renderd")
HOOK_TIMEOUT = 600.0  # seconds an `error` hook may take, when nothing else bounds it


@dataclass(frozen=True)
class DaemonConfig:
    spool: Path
    name: str
    host: str
    poll: float = 0.5
    lease: float = 60.0
    tags: tuple[str, ...] = ()
    exit_when_idle: bool = False
    heartbeat: float = 5.0  # held chunks and the node file are rewritten this often
    grace: float = 10.0  # SIGTERM to SIGKILL for a render being stopped
    sweep_budget: float = 0.005  # share of one core the idle rescans of a large queue may use
    capabilities: dict[str, str | None] = field(default_factory=dict)
    port: int | None = None  # status socket (0: any free port; None: none)
    bind: str = "127.0.0.1"
    private: bool = False
    token: str = ""
    # sharing the workstation; None: as the farm settings file says for this node (else always, never)
    hours: WorkHours | None = None
    hours_end: str | None = None  # finish | suspend the chunk in hand when the hours end
    cpu_share: float | None = None
    min_available: int | None = None
    quiet_for: float | None = None
    # A render suspended for lack of memory keeps its memory; if that lasts, the chunk goes back to the queue
    # (without counting an attempt) rather than hold the node forever: the render may be what fills it.
    memory_give_up: float = 600.0


@dataclass
class Outcome:
    """How one attempt ended."""

    kind: str  # done | failed | stopped | cancelled | lost
    error: str | None = None


class Daemon:
    def __init__(self, config: DaemonConfig, spool: Spool, clock: Callable[[], datetime] | None = None):
        self.config = config
        self.clock = clock or datetime.now  # local time, for work hours; tests inject their own
        self.spool = spool
        self.name = config.name
        self.pid = os.getpid()
        self.started = psutil.Process().create_time()
        self.spool_id = os.path.realpath(spool.root)
        self.signals = 0
        self.state = "idle"
        self.held: Held | None = None
        self.progress: str | None = None
        self.render: RenderProcess | None = None
        self.chunks_done = 0
        self.chunks_failed = 0
        # queue scanning
        self.queue_cache: dict[str, Entry] = {}
        self.candidate_cache: dict[str, tuple[Entry, Candidate, bool]] = {}
        self.candidates: list[Candidate] = []
        self.cursor = 0
        self.queue_mtime = -1
        self.last_full_sweep = -math.inf
        self.sweep_cost = 0.0
        self.reported: set[tuple[str, object]] = set()
        self.job_cache: dict[str, tuple[Signature, Job | None]] = {}
        self.plans: dict[str, dict[str, PlannedChunk]] = {}
        self.plans_missing: set[str] = set()
        self.held_jobs: frozenset[str] = frozenset()
        self.blocked_jobs: frozenset[str] = frozenset()
        self.jobs_by_id: dict[str, Job] = {}
        self.job_submitted: dict[str, float] = {}
        self.running_cache: dict[str, Entry] = {}
        self.other_nodes: dict[str, dict[str, str | None]] = {}
        # timers (monotonic)
        self.next_node_write = 0.0
        self.last_node_write = -math.inf
        self.node_dirty = True
        self.next_stale_check = 0.0
        self.last_idle_stale_check = -math.inf
        self.next_nodes_read = 0.0
        self.wake_r, self.wake_w = os.pipe()
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        # one selector for the daemon's life: the wake-up pipe always, a render's output while it runs
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        # control over the status socket
        self.board = Board(wake=self._wake)
        self.server: StatusServer | None = None
        self.address: str | None = None
        self.paused = False  # take nothing new; the running render is suspended (SIGSTOP)
        self.draining = False  # finish the running chunk, take nothing new
        self.interrupt: str | None = None  # "kill" or "cancel": stop the running render now
        self.chunk_started = 0.0
        # the farm settings file, and what this node makes of it
        self.settings = FarmSettings()
        self.settings_sig: object = self  # nothing read yet (the file's signature is never the daemon)
        self.node_settings = NodeSettings()
        self.gate = PressureGate(PressurePolicy())
        self.sampler: UsageSampler | None = None
        self.next_sample = 0.0
        self.asleep = False  # outside its work hours
        self.suspended = False  # the render is stopped with SIGSTOP (pause, pressure or hours)
        self.suspended_since = 0.0
        self.note: str | None = None  # why the node is asleep or stepped aside, for `render nodes`
        self.free_memory: int | None = None
        # failure policy: failures in a row per job on this node, and the jobs it stopped taking
        self.streaks: dict[str, int] = {}
        self.blocklisted: frozenset[str] = frozenset()
        self.deadline = math.inf  # of the attempt in hand (monotonic)
        self.next_beat = 0.0

    # ---- lifecycle ------------------------------------------------------------------------------

    def run(self) -> int:
        previous = self._install_signals()
        try:
            self._start()
            while not self.signals:
                try:
                    if self._step() == "exit":
                        break
                except Exception:  # noqa: BLE001 - the loop boundary: one bad moment must not take the node down
                    log.exception("unexpected error; carrying on")
                    self._wait(max(1.0, self.config.poll))
        finally:
            self._shutdown()
            self._restore_signals(previous)
        return 0

    def _step(self) -> str:
        self._maintenance()
        held = self._next_chunk() if self._taking_work() else None
        if held is not None:
            self._run_chunk(held)
            return "ran"
        if self.config.exit_when_idle and self._nothing_left():
            log.info("nothing left that this node can run: exiting")
            return "exit"
        # with nothing to run, look for dead holders every poll, so a crash on this host is noticed at once
        if time.monotonic() - self.last_idle_stale_check >= self.config.poll:
            self.last_idle_stale_check = time.monotonic()
            self._release_stale()
        self._wait(self.config.poll)
        return "waited"

    def _install_signals(self) -> dict[int, object]:
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)}
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only so that a child's exit wakes the select
        previous["wakeup"] = signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        return previous

    def _restore_signals(self, previous: dict) -> None:
        signal.set_wakeup_fd(previous.pop("wakeup"))
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        self.selector.close()
        os.close(self.wake_r)
        os.close(self.wake_w)

    def _on_stop_signal(self, signum: int, frame: object) -> None:
        self.signals += 1  # the loop does the rest; a second signal means "kill now"

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self.wake_w, b"\0")

    def _start_server(self) -> None:
        if self.config.port is None:
            return
        self.server = StatusServer(self.board, self.config.bind, self.config.port, self.config.token,
                                   self.config.private)
        port = self.server.start()
        where = self.config.host if self.config.bind in ("0.0.0.0", "::", "") else self.config.bind
        self.address = f"http://{where}:{port}"
        log.info("status and control on %s", self.address)

    def _handle_commands(self) -> None:
        """Control requests from the socket, taken on the loop's own thread."""
        while not self.board.commands.empty():
            name, job = self.board.commands.get_nowait()
            log.info("control: %s%s", name, f" {job}" if job else "")
            render = self.render
            if name == "pause":
                self.paused = True
            elif name == "resume":
                self.paused = self.draining = False
            elif name == "drain":
                self.draining = True
            elif name == "kill" and render is not None:
                self.interrupt = "kill"
            elif name == "cancel" and self.held is not None and self.held.info.job == job:
                self.interrupt = "cancel"
            elif name == "quit":
                self.signals += 1
            self._apply_suspension()
            self._set_state(self._current_state())

    def _current_state(self) -> str:
        if self.paused:
            return "paused"
        if self.held is not None:
            return "suspended" if self.suspended else "busy"
        if self.draining:
            return "paused"
        if self.asleep:
            return "asleep"
        return "standby" if self.gate.busy else "idle"  # standby: the workstation's owner needs it

    def _taking_work(self) -> bool:
        """Whether this node may start a chunk now: not paused or draining, in its hours, the machine quiet."""
        if self.paused or self.draining or self.asleep or self.gate.busy:
            return False
        return not (self.gate.policy.min_available and self.free_memory is not None
                    and self.free_memory < self.gate.policy.min_available)

    # ---- sharing the workstation -----------------------------------------------------------------

    def _read_settings(self) -> None:
        """Re-read SPOOL/settings.yaml when it changed; a bad edit is reported once and the last good one kept."""
        sig = self.spool.settings_signature()
        if sig == self.settings_sig:
            return
        self.settings_sig = sig
        data = self.spool.read_settings()[1] if sig else b""
        try:
            self.settings = parse_settings(data, str(self.spool.settings_path)) if sig else FarmSettings()
        except InfoFileError as error:
            log.error("ignoring the farm settings until fixed: %s", error)
            return
        if sig:
            log.info("farm settings read from %s", self.spool.settings_path)
        self._configure_node()

    def _configure_node(self) -> None:
        config, own = self.config, self.settings.node(self.name)
        self.node_settings = NodeSettings(
            hours=config.hours or own.hours,
            hours_end=config.hours_end or own.hours_end or "finish",
            cpu_share=config.cpu_share if config.cpu_share is not None else own.cpu_share,
            min_available=config.min_available if config.min_available is not None else own.min_available,
            quiet_for=config.quiet_for if config.quiet_for is not None else own.quiet_for,
        )
        ns = self.node_settings
        policy = PressurePolicy(cpu_share=ns.cpu_share, min_available=ns.min_available,
                                quiet_for=ns.quiet_for if ns.quiet_for is not None else 30.0)
        if policy != self.gate.policy:
            self.gate = PressureGate(policy)
            self.sampler = UsageSampler() if policy.active else None
        self._check_hours_and_load(force=True)

    def _check_hours_and_load(self, force: bool = False) -> None:
        """Work hours and workstation load, once a second: asleep or not, and whether the render steps aside."""
        now = time.monotonic()
        if not force and now < self.next_sample:
            return
        self.next_sample = now + 1.0
        notes = []
        hours = self.node_settings.hours
        moment = self.clock()
        self.asleep = hours is not None and not hours.is_open(moment)
        if self.asleep:
            assert hours is not None
            change = hours.next_change(moment)
            until = f" until {change:%a %H:%M}" if change else ""
            notes.append(f"asleep{until} (work hours {hours.describe()})")
        memory = psutil.virtual_memory()
        self.free_memory = memory.available
        if self.sampler is not None:
            render = self.render
            sample = self.sampler.sample([self.pid, render.pid] if render else [self.pid])
            decision = self.gate.update(sample, now)
            if decision != "run":
                log.info("%s: %s", "stepping aside" if decision == "suspend" else "machine quiet again",
                         self.gate.reason or "resuming")
            if self.gate.busy and self.gate.reason:
                notes.append(f"stepped aside: {self.gate.reason}")
        short = self.gate.policy.min_available and (self.free_memory or 0) < self.gate.policy.min_available
        if self.suspended and short and now - self.suspended_since > self.config.memory_give_up and not self.interrupt:
            self.interrupt = "memory"
        note = "; ".join(notes) or None
        if note != self.note:
            self.note = note
            self.node_dirty = True
        self._apply_suspension()
        self._set_state(self._current_state())

    def _apply_suspension(self) -> None:
        """Stop or continue the render's process group to match pause, load and hours; time stopped is not
        counted against the chunk's timeout."""
        render = self.render
        want = render is not None and (
            self.paused or self.gate.busy or (self.asleep and self.node_settings.hours_end == "suspend"))
        if want == self.suspended or render is None:
            if render is None:
                self.suspended = False
            return
        kill_group(render.pid, signal.SIGSTOP if want else signal.SIGCONT)
        self.suspended = want
        if want:
            self.suspended_since = time.monotonic()
            log.info("suspended %s", self.held.chunk_id if self.held else "the render")
        else:
            self.deadline += time.monotonic() - self.suspended_since
            log.info("resumed %s", self.held.chunk_id if self.held else "the render")
        self.node_dirty = True

    def _start(self) -> None:
        caps = ", ".join(f"{k} {v}" if v else k for k, v in self.config.capabilities.items()) or "none"
        log.info("node %s on %s (pid %d) serving %s; capabilities: %s", self.name, self.config.host, self.pid,
                 self.spool.root, caps)
        self.spool.remove_stale_temps()
        self._read_settings()
        self._kill_orphans()
        self._start_server()
        self._write_node()

    def _shutdown(self) -> None:
        self.state = "offline"
        self.held = None
        try:
            self._write_node(stopped=True)
        except OSError as error:
            log.error("could not deregister: %s", error)
        self.board.publish("state", state="offline")
        if self.server is not None:
            self.server.stop()
        log.info("stopped")

    def _wait(self, seconds: float) -> None:
        self.selector.select(timeout=max(0.0, seconds))
        self._drain_wakeups()

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wake_r, 512):
                pass

    # ---- periodic work ---------------------------------------------------------------------------

    def _maintenance(self) -> None:
        """Node heartbeat, the list of live nodes, and taking back chunks of dead holders, each when due.

        An I/O error here (a share that went away, a full disk) is logged and retried when next due:
        it must neither stop the node nor the render it is running.
        """
        self._handle_commands()
        now = time.monotonic()
        try:
            if now >= self.next_nodes_read:  # the settings file is looked at as often as the other nodes
                self._read_settings()
            self._check_hours_and_load()
            if now >= self.next_node_write or (self.node_dirty and now - self.last_node_write >= 1.0):
                self.next_node_write = now + self.config.heartbeat
                self._write_node()
            if now >= self.next_nodes_read:
                self.next_nodes_read = now + self.config.heartbeat
                self._read_nodes()
            if now >= self.next_stale_check:
                self.next_stale_check = now + self.config.heartbeat
                self._release_stale()
        except OSError as error:
            log.error("spool maintenance failed: %s", error)

    def _write_node(self, stopped: bool = False) -> None:
        held = self.held
        info = held.info if held else None
        render = self.render
        usage = process_usage(render.pid) if render else {}  # once: the file and the socket both show it
        record = NodeRecord(
            name=self.name,
            host=self.config.host,
            pid=self.pid,
            pid_started=self.started,
            started=fmt.format_time(datetime.fromtimestamp(self.started, UTC)),
            heartbeat=now_text(),
            state=self.state,
            note=self.note,
            address=self.address,
            chunk=held.chunk_id if held else None,
            job=info.job if info else None,
            frames=str(info.frames) if info and info.frames else None,
            progress=self.progress if held else None,
            render_pid=render.pid if render else None,
            render_started=render.started if render else None,
            render_rss=int(usage.get("rss", 0)) or None,
            capabilities=dict(self.config.capabilities),
            tags=list(self.config.tags),
            chunks_done=self.chunks_done,
            chunks_failed=self.chunks_failed,
            poll=self.config.poll,
            stopped_at=now_text() if stopped else None,
            **system_figures(),
        )
        self.spool.write_node(record)
        self._publish_status(record, usage)
        now = time.monotonic()
        self.last_node_write = now
        self.next_node_write = now + self.config.heartbeat
        self.node_dirty = False

    def _publish_status(self, record: NodeRecord, usage: dict[str, float]) -> None:
        """The snapshot GET /status serves: the node file's figures, the chunk in hand, and counters."""
        status: dict[str, object] = {k: v for k, v in asdict(record).items() if v not in (None, [], {})}
        status.update(address=self.address, draining=self.draining)
        render = self.render
        if render is not None and self.held is not None:
            status["render"] = {"pid": render.pid, "elapsed": round(time.monotonic() - self.chunk_started, 1),
                                "log": self.held.info.log, **usage}
        self.board.set_status(status)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.node_dirty = True
            self.board.set_status({**self.board.status(), "state": state, "draining": self.draining,
                                   "note": self.note})
            self.board.publish("state", state=state, chunk=self.held.chunk_id if self.held else None)

    def _read_nodes(self) -> None:
        """The capabilities of the other live nodes, to leave them the chunks this node failed."""
        now = time.time()
        self.other_nodes = {
            record.name: record.capabilities
            for record in self.spool.list_nodes()
            if record.name != self.name and node_state(record, now, self._pid_check) != "offline"
        }

    def _pid_check(self, record: NodeRecord) -> bool | None:
        """Whether a node's daemon runs, where this host can tell (same host); None elsewhere."""
        return alive(record.pid, record.pid_started) if record.host == self.config.host else None

    def _release_stale(self) -> None:
        """Take back chunks whose holder died: a dead pid on this host at once, elsewhere after the lease."""
        self.running_cache = self.spool.scan(self.spool.running, self.running_cache)
        found_dead_here = False
        for name, entry in self.running_cache.items():
            if entry.info is None or not self._is_stale(entry):
                continue
            status = self.spool.release_stale(name, self._is_stale, self._lost_attempt)
            if status is not None:
                claim = entry.info.claim
                holder = claim.node if claim else "unknown node"
                log.warning("took back %s from %s (%s): %s", name, holder, self._lost_attempt(entry).error, status)
                found_dead_here = found_dead_here or (claim is not None and claim.host == self.config.host)
        if found_dead_here:
            self._kill_orphans()

    def _is_stale(self, entry: Entry) -> bool:
        info = entry.info
        if info is None:
            return False
        claim = info.claim
        if claim is None:  # moved here but never stamped: its claimer died mid-claim
            return time.time() - entry.mtime > self.config.lease
        if claim.node == self.name and claim.pid == self.pid:
            return False
        if claim.host == self.config.host:
            return not alive(claim.pid, claim.pid_started)
        beat = fmt.parse_time(claim.heartbeat) or entry.mtime
        return time.time() - beat > self.config.lease

    def _lost_attempt(self, entry: Entry) -> Attempt:
        claim = entry.info.claim if entry.info else None
        if claim is None:
            return Attempt(node="unknown", error="claimed but never started", at=now_text())
        if claim.host == self.config.host and not alive(claim.pid, claim.pid_started):
            error = f"renderd (pid {claim.pid}) died"
        else:
            age = time.time() - (fmt.parse_time(claim.heartbeat) or entry.mtime)
            error = f"node lost: no heartbeat for {age:.0f} s"
        return Attempt(node=claim.node, error=error, log=entry.info.log if entry.info else None, at=now_text())

    def _kill_orphans(self) -> None:
        for process in find_orphans(self.spool_id, self.config.host, alive):
            with contextlib.suppress(psutil.Error):
                log.warning("killing orphaned render pid %d (%s)", process.pid, " ".join(process.cmdline())[:120])
                kill_tree(process.pid, process.create_time(), grace=self.config.grace)

    # ---- choosing work ----------------------------------------------------------------------------

    def _next_chunk(self) -> Held | None:
        due = self._sweep_due()
        if due is not None:
            self._sweep(full=due == "full")
        while self.cursor < len(self.candidates):
            candidate = self.candidates[self.cursor]
            self.cursor += 1
            try:
                held = self.spool.claim(candidate.name, self._make_claim, self._still_wanted)
            except OSError as error:  # a lock timeout or an I/O error on one file must not stop the node
                log.error("could not claim %s: %s", candidate.name, error)
                continue
            if isinstance(held, InfoFileError):  # only the full read at claim time splits the command
                entry = self.queue_cache.get(candidate.name)
                invalid = Entry(candidate.name, entry.sig if entry else None, 0.0, error=held)
                self.queue_cache[candidate.name] = invalid
                self._report_invalid(invalid)
            elif held is not None:
                self.queue_cache.pop(candidate.name, None)  # it left the queue; if it comes back, read it anew
                return held
        return None

    def _sweep_due(self) -> str | None:
        """'full' for the periodic rescan, 'names' when the queue folder changed, else None (keep walking).

        The full rescan stats every file, to see edits made in place; it comes every poll unless the queue
        is so large that it would cost more than `sweep_budget` of a core. A changed folder (files dropped,
        taken or deleted) only needs the names listed, which stays cheap however large the queue is.
        """
        since = time.monotonic() - self.last_full_sweep
        if since >= max(self.config.poll, self.sweep_cost / self.config.sweep_budget):
            return "full"
        if self.cursor < len(self.candidates):
            return None
        return "names" if self.spool.folder_mtime(self.spool.queue) != self.queue_mtime else None

    def _sweep(self, full: bool = True) -> None:
        """Re-list the queue, parsing only new or changed files, and order what this node can run."""
        started = time.process_time()
        self.queue_mtime = self.spool.folder_mtime(self.spool.queue)
        previous = self.queue_cache
        self.plans_missing.clear()
        self.queue_cache = self.spool.scan(
            self.spool.queue, previous, names_only=not full, quick=True, planned=self._planned
        )
        reparsed = any(previous.get(name) is not entry for name, entry in self.queue_cache.items())
        self._read_jobs()
        capabilities = self.config.capabilities
        candidates = []
        fresh_cache = {}
        for name, entry in self.queue_cache.items():
            if entry.error is not None:
                self._report_invalid(entry)
                continue
            cached = self.candidate_cache.get(name)
            if cached is None or cached[0] is not entry:
                if entry.info is None:  # vouched for by its job's plan, loaded by this scan
                    candidate = self.plans[_chunk_job(name) or ""][name].candidate
                else:
                    submitted = self.job_submitted.get(entry.info.job or "") or fmt.parse_time(entry.info.submitted)
                    candidate = Candidate.from_info(name, entry.info, submitted or entry.mtime)
                cached = (entry, candidate, can_run(candidate, capabilities))
            fresh_cache[name] = cached
            if cached[2]:  # files this node could never run cost nothing more
                candidates.append(cached[1])
        self.candidate_cache = fresh_cache
        planned_jobs = {_chunk_job(name) for name, entry in self.queue_cache.items() if entry.planned}
        self.plans = {job: plan for job, plan in self.plans.items() if job in planned_jobs}  # forget drained jobs
        finished, self.blocked_jobs = self._finished({(c.job or "", name) for c in candidates for name in c.after})
        if full:
            blocklisted = frozenset(self.spool.jobs_blocklisting(self.name))
            for job_id in self.blocklisted - blocklisted:  # cleared by `render retry`: a fresh start
                self.streaks.pop(job_id, None)
            self.blocklisted = blocklisted
        self.candidates = runnable(candidates, self.name, capabilities, self.held_jobs, self.other_nodes, finished,
                                   self.blocklisted, self.free_memory)
        self.cursor = 0
        if full:
            self.last_full_sweep = time.monotonic()
            if not reparsed:  # the steady cost of a look, without the one-off parsing of new or edited files
                self.sweep_cost = time.process_time() - started

    def _planned(self, name: str, sig: Signature) -> bool:
        """Whether a queue file is still exactly as `render add` wrote it, so it need not be read."""
        job_id = _chunk_job(name)
        if job_id is None:  # a step (JOB-end.yaml) or a hand-made file: never in a plan
            return False
        plan = self.plans.get(job_id)
        if plan is None and job_id not in self.plans_missing:
            plan = self.spool.read_plan(job_id)
            if plan:
                self.plans[job_id] = plan
            else:  # not written yet, or a hand-made file: look again at the next sweep
                self.plans_missing.add(job_id)
        chunk = plan.get(name) if plan else None
        return chunk is not None and chunk.sig == sig

    def _finished(self, waited_for: set[tuple[str, str]]) -> tuple[frozenset[str], frozenset[str]]:
        """Of what queued steps wait for (a job's chunks, or another step: (job, name) pairs), what is done,
        and what failed for good (blocked: the steps after it cannot run until it is retried)."""
        finished, blocked = set(), set()
        # a job with a chunk still in the queue is not finished: no need to list its records (the hot path:
        # every planned job has an end step waiting from the start)
        queued = {job for job in map(_chunk_job, self.queue_cache) if job}
        for job_id, name in waited_for:
            job = self.jobs_by_id.get(name)
            if job is not None and name in queued:
                continue
            if job is not None:  # the name of a job: all its frame chunks
                done, failed = self.spool.chunk_counts(name)
                state = "done" if done >= job.chunks else "failed" if failed else "pending"
            else:  # the name of a step of the waiting job
                state = self.spool.step_state(job_id, name)
            if state == "done":
                finished.add(name)
            elif state == "failed":
                blocked.add(name)
        return frozenset(finished), frozenset(blocked)

    def _read_jobs(self) -> None:
        self.job_cache = self.spool.scan_jobs(self.job_cache)
        jobs = [job for _sig, job in self.job_cache.values() if job is not None]
        self.jobs_by_id = {job.id: job for job in jobs}
        self.held_jobs = frozenset(job.id for job in jobs if job.status in ("paused", "cancelled", "failed"))
        self.job_submitted = {job.id: fmt.parse_time(job.submitted) or 0.0 for job in jobs}

    def _refresh_job(self, job_id: str) -> None:
        """Re-read one job's manifest if it changed since the last sweep (its status decides what may run)."""
        name = f"{job_id}.yaml"
        cached = self.job_cache.get(name)
        fresh = self.spool.scan_job(name, cached)
        if fresh is None or fresh is cached:
            return
        self.job_cache[name] = fresh
        job = fresh[1]
        if job is not None:
            self.jobs_by_id[job_id] = job
            held = job.status in ("paused", "cancelled", "failed")
            self.held_jobs = self.held_jobs | {job_id} if held else self.held_jobs - {job_id}

    def _report_invalid(self, entry: Entry) -> None:
        key = (entry.name, entry.sig)
        if key not in self.reported:
            self.reported.add(key)
            log.warning("skipping %s", entry.error)

    def _still_wanted(self, info: InfoFile) -> bool:
        """The scheduler's verdict on the file as just re-read under the lock (it may have been edited).

        The job's manifest is looked at again too (a stat, and a read if it changed): another node may have
        failed or paused the job since this node last swept the queue.
        """
        if info.job is not None and info.job in self.jobs_by_id:
            self._refresh_job(info.job)
        candidate = Candidate.from_info("", info, 0.0)
        return bool(runnable([candidate], self.name, self.config.capabilities, self.held_jobs, self.other_nodes,
                             blocklisted=self.blocklisted))

    def _make_claim(self, info: InfoFile) -> Claim:
        now = now_text()
        return Claim(node=self.name, host=self.config.host, pid=self.pid, pid_started=self.started,
                     claimed_at=now, heartbeat=now)

    def _nothing_left(self) -> bool:
        """Nothing queued that this node could ever take, and nothing running that could come back."""
        self._sweep()
        pending = [c for c in self.candidate_values() if self._may_still_run(c)]
        if runnable(pending, self.name, self.config.capabilities, self.held_jobs):
            return False
        return not self.spool.scan(self.spool.running, self.running_cache)

    def _may_still_run(self, candidate: Candidate) -> bool:
        """A step may run once what it waits for is done; it never will if that failed, or if nothing of its job
        is left queued or running (its chunks were deleted by hand) without it being done."""
        if not candidate.after:
            return True
        if any(name in self.blocked_jobs for name in candidate.after):
            return False
        job_id = candidate.job or ""
        if self._finished({(job_id, name) for name in candidate.after})[0] >= set(candidate.after):
            return True
        others = [*self.spool.job_files(self.spool.queue, job_id), *self.spool.job_files(self.spool.running, job_id)]
        return len(others) > 1  # itself, and something it waits for

    def candidate_values(self) -> list[Candidate]:
        return [candidate for _entry, candidate, _capable in self.candidate_cache.values()]

    # ---- running a chunk ---------------------------------------------------------------------------

    def _run_chunk(self, held: Held) -> None:
        self.held = held
        self.progress = None
        self.interrupt = None
        self._set_state(self._current_state())
        info = held.info
        frames = f" frames {info.frames}" if info.frames else ""
        log.info("running %s%s (attempt %d of %d)", held.chunk_id, frames, info.attempts, info.max_attempts)
        started_at = self.chunk_started = time.monotonic()
        log_path, log_fd = "", -1
        try:
            log_path, log_fd = self.spool.open_log(held, self.name)
            held.info = held.info.with_changes(log=log_path)  # written with the first heartbeat
            self.board.log_path = self.spool.root / log_path
            self.board.publish("chunk_started", chunk=held.chunk_id, job=info.job, frames=str(info.frames or ""),
                               log=log_path)
            outcome = self._attempt(held, log_path, log_fd)
        except Exception as error:  # noqa: BLE001 - whatever broke, the chunk must not stay stuck in running/
            log.exception("error while running %s", held.chunk_id)
            if self.render is not None and self.render.poll() is None:
                self.render.kill()
                self.render.finish()
            outcome = Outcome("failed", f"renderd error: {error}")
        finally:
            if log_fd >= 0:
                os.close(log_fd)
            self.render = None
        seconds = time.monotonic() - started_at
        self._record(held, outcome, log_path, seconds)
        self.board.publish(f"chunk_{outcome.kind}", chunk=held.chunk_id, job=held.info.job, error=outcome.error,
                           log=log_path, seconds=round(seconds, 3))
        self.board.log_path = None
        self.held = None
        self.progress = None
        self.node_dirty = True
        self._set_state(self._current_state())

    def _attempt(self, held: Held, log_path: str, log_fd: int) -> Outcome:
        """Pre hooks, the runner's commands, its checks and the job's output checks, then post hooks."""
        info = held.info
        runner = runner_for(info)
        places = self._places(info)
        env = self._environment(held, log_path, places)
        self.deadline = time.monotonic() + info.timeout if info.timeout else math.inf
        # the first beat comes soon, so a long render's pid and log are on record within a second,
        # while chunks shorter than that never pay for the extra write
        self.next_beat = time.monotonic() + min(1.0, self.config.heartbeat)
        if any("{output}" in arg for arg in info.argv):
            Path(places["output"]).mkdir(parents=True, exist_ok=True)
        stage = "end" if runner.name == "end" else "pre"
        outcome = self._run_hooks(stage, held, log_fd, env, places)
        if outcome is not None or stage == "end":
            return outcome or Outcome("done")
        try:
            commands = runner.commands(info, places)
        except RunnerError as error:
            os.write(log_fd, f"renderd: cannot run: {error}\n".encode())
            return Outcome("failed", str(error))
        if not commands:
            os.write(log_fd, f"renderd: {now_text()} node {self.name}: nothing left to do (outputs exist)\n".encode())
        for argv in commands:
            outcome = self._run_process(argv, held, runner, log_fd, env)
            if outcome is not None:
                return outcome
        problem = runner.check(info, places) or self._check_outputs(runner, info, places)
        if problem:
            os.write(log_fd, f"renderd: check failed: {problem}\n".encode())
            return Outcome("failed", problem)
        files = "\n".join(str(path) for path in runner.outputs(info, places))
        return self._run_hooks("post", held, log_fd, {**env, "RENDERD_OUTPUT_FILES": files}, places) or Outcome("done")

    def _places(self, info: InfoFile) -> dict[str, str]:
        """What `{job}`, `{spool}` and `{output}` mean on this node's mount of the spool."""
        job = info.job or LOOSE
        return {"job": job, "spool": str(self.spool.root), "output": str(self.spool.output / job)}

    def _check_outputs(self, runner: Runner, info: InfoFile, places: dict[str, str]) -> str | None:
        """The job's checks (over the farm's) on every frame the chunk wrote."""
        checks = info.checks.over(self.settings.checks)
        if not checks:
            return None
        problems = [problem for path in runner.outputs(info, places) if (problem := check_content(path, checks))]
        if not problems:
            return None
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        return f"output check: {'; '.join(problems[:3])}{more}"

    def _hooks(self, stage: str, info: InfoFile) -> list[list[str]]:
        """The farm's hook for `stage`, then the job's own."""
        commands = [self.settings.hooks.get(stage), info.hooks.get(stage)]
        return [fmt.hook_argv(command) for command in commands if command]

    def _run_hooks(
        self, stage: str, held: Held, log_fd: int, env: dict[str, str], places: dict[str, str], heartbeat: bool = True
    ) -> Outcome | None:
        """Run the hooks of one stage in order; the first that fails fails the chunk, naming the hook."""
        for argv in self._hooks(stage, held.info):
            argv = fmt.expand(argv, held.info.frames, None, places)
            outcome = self._run_process(argv, held if heartbeat else None, None, log_fd,
                                        {**env, "RENDERD_HOOK": stage}, hook=stage)
            if outcome is not None:
                if outcome.kind == "failed":
                    outcome = Outcome("failed", f"{stage} hook {argv[0]}: {outcome.error}")
                return outcome
        return None

    def _run_process(
        self, argv: list[str], held: Held | None, runner: Runner | None, log_fd: int, env: dict[str, str],
        hook: str = "",
    ) -> Outcome | None:
        """Start one process of the attempt and stream it to the end; an outcome if the attempt ends here."""
        what = f"{hook} hook" if hook else "command"
        os.write(log_fd, f"renderd: {now_text()} node {self.name}: {what}: {shlex.join(argv)}\n".encode())
        try:
            self.render = RenderProcess(argv, cwd=str(self.spool.root), env=env)
        except StartError as error:
            os.write(log_fd, f"renderd: {error}\n".encode())
            return Outcome("failed", str(error))
        self._apply_suspension()  # started while the workstation is busy or the node paused: stop it at once
        try:
            return self._watch(held, runner, log_fd)
        finally:
            self.render = None
            self.suspended = False

    def _watch(self, held: Held | None, runner: Runner | None, log_fd: int) -> Outcome | None:
        """Stream one process's output until it exits; the outcome if the attempt ends here, else None."""
        render = self.render
        assert render is not None
        stopping: Outcome | None = None
        kill_at = math.inf
        pending = b""
        selector = self.selector
        output = render.fileno()
        selector.register(output, selectors.EVENT_READ)
        try:
            while True:
                now = time.monotonic()
                deadline = math.inf if self.suspended else self.deadline
                wait = min(0.5, self.next_beat - now, deadline - now, kill_at - now, self.next_sample - now)
                # after end of output, only a signal (SIGCHLD among them) or the timeout wakes the select
                self._wait(min(max(0.0, wait), 0.05) if render.eof else max(0.0, wait))
                data = render.read()
                if data:
                    os.write(log_fd, data)
                    if runner is not None:
                        pending = self._parse_progress(runner, pending + data)
                if render.eof and output in selector.get_map():
                    selector.unregister(output)
                if render.poll() is not None:
                    os.write(log_fd, render.read())
                    if output in selector.get_map():
                        selector.unregister(output)  # before finish() closes it
                    code = render.finish()
                    if stopping is not None:
                        return stopping
                    if code != 0:
                        return Outcome("failed", _exit_text(code))
                    return None
                self._handle_commands()
                now = time.monotonic()
                if self.interrupt and stopping is None:
                    why = {"kill": "killed over the control socket", "cancel": "its job was cancelled",
                           "memory": f"memory stayed short for {self.config.memory_give_up:g} s: handed back"
                           }[self.interrupt]
                    os.write(log_fd, f"\nrenderd: stopping: {why}\n".encode())
                    stopping = Outcome("cancelled" if self.interrupt == "cancel" else "stopped", why)
                    render.terminate()
                    kill_at = now + min(self.config.grace, 1.0)
                if self.signals and stopping is None:
                    stopping = Outcome("stopped", "node stopped")
                    render.terminate()
                    kill_at = now + self.config.grace
                if self.signals > 1 or now >= kill_at:
                    render.kill()
                    kill_at = math.inf
                if stopping is None and now >= self.deadline and not self.suspended:
                    limit = held.info.timeout if held is not None and held.info.timeout else HOOK_TIMEOUT
                    stopping = Outcome("failed", f"timed out after {limit:g} s")
                    os.write(log_fd, f"\nrenderd: {stopping.error}: stopping it\n".encode())
                    render.terminate()
                    kill_at = now + self.config.grace
                if now >= self.next_beat or self.node_dirty or now >= self.next_sample:
                    if now >= self.next_beat and held is not None:
                        self.next_beat = now + self.config.heartbeat
                        result = self._heartbeat(held)
                        if result in ("cancelled", "lost") and stopping is None:
                            why = "its info file was deleted" if result == "cancelled" else "another node took it over"
                            os.write(log_fd, f"\nrenderd: stopping: {why}\n".encode())
                            stopping = Outcome(result, why)
                            render.terminate()
                            kill_at = now + self.config.grace
                    self._maintenance()
        finally:
            if output in selector.get_map():
                selector.unregister(output)

    def _parse_progress(self, runner: Runner, data: bytes) -> bytes:
        *lines, rest = re.split(rb"[\r\n]", data)  # POV-Ray and ffmpeg redraw one line with \r
        for line in lines:
            text = runner.progress(line.decode("utf-8", "replace"))
            if text:
                self.progress = text
                self.node_dirty = True
                self.board.publish("progress", chunk=self.held.chunk_id if self.held else None, progress=text)
        return rest[-4096:]

    def _heartbeat(self, held: Held) -> str:
        claim = held.info.claim
        assert claim is not None
        render = self.render
        updated = Claim(
            node=claim.node, host=claim.host, pid=claim.pid, pid_started=claim.pid_started,
            claimed_at=claim.claimed_at, heartbeat=now_text(),
            render_pid=render.pid if render else None, render_started=render.started if render else None,
            progress=self.progress,
        )
        try:
            return self.spool.update_held(held, updated)
        except OSError as error:  # a full disk or a lost share must not kill the render; retry next beat
            log.error("heartbeat for %s failed: %s", held.name, error)
            return "ok"

    def _environment(self, held: Held, log_path: str, places: dict[str, str]) -> dict[str, str]:
        """The render's and the hooks' environment: who runs what, where its frames go, where its log is.

        RENDERD_SPOOL/HOST/DAEMON_PID also mark the processes as this daemon's, to find orphans after a crash.
        """
        info = held.info
        job = self.jobs_by_id.get(info.job or "")
        output = self._output_folder(job, places)
        frames = info.frames
        env = dict(os.environ)
        env.update({
            "RENDERD_SPOOL": self.spool_id,
            "RENDERD_NODE": self.name,
            "RENDERD_HOST": self.config.host,
            "RENDERD_DAEMON_PID": str(self.pid),
            "RENDERD_DAEMON_STARTED": repr(self.started),
            "RENDERD_CHUNK": held.chunk_id,
            "RENDERD_JOB": info.job or "",
            "RENDERD_FRAMES": str(info.frames) if info.frames else "",
            "RENDERD_LOG": str(self.spool.root / log_path),
            "RENDERD_OUTPUT": output,
            "RENDERD_FIRST_FRAME": str(frames.start) if frames else "",
            "RENDERD_LAST_FRAME": str(frames.last) if frames else "",
            "RENDERD_ATTEMPT": str(info.attempts),
            "RENDERD_OWNER": job.owner or "" if job else "",
        })
        return env

    def _output_folder(self, job: Job | None, places: dict[str, str]) -> str:
        """Where a job's frames go on this node: the folder of its output pattern, else the spool's output/JOB."""
        if job is None or not job.output:
            return places["output"]
        pattern = fmt.expand([job.output], None, None, places)[0]
        if pattern.startswith("//") and job.source:  # Blender's relative to the .blend
            pattern = str(Path(self.spool.root, job.source).parent / pattern[2:])
        return str(Path(self.spool.root, pattern).parent)

    def _record(self, held: Held, outcome: Outcome, log_path: str, seconds: float) -> None:
        name = held.chunk_id
        try:
            if outcome.kind == "done":
                completion = Completion(
                    chunk=name, node=self.name, host=self.config.host, finished=now_text(), seconds=round(seconds, 3),
                    job=held.info.job, frames=str(held.info.frames) if held.info.frames else None, log=log_path,
                    attempts=held.info.attempts,
                )
                if self.spool.complete(held, completion):
                    self.chunks_done += 1
                    self.streaks.pop(held.info.job or "", None)
                    log.info("done %s in %.1f s", name, seconds)
                    if held.info.extra.get("runner") == "end" and held.info.job:
                        self._announce(held.info.job, "finished")
                else:
                    log.warning("finished %s, but it was cancelled or taken over meanwhile", name)
            elif outcome.kind == "failed":
                self.chunks_failed += 1
                attempt = Attempt(node=self.name, error=outcome.error or "failed", log=log_path, at=now_text())
                status = self.spool.fail(held, attempt)
                log.warning("failed %s: %s (log %s) -> %s", name, outcome.error, log_path, status)
                if status in ("queued", "failed"):
                    self._count_failure(held.info, attempt.error)
                if status == "failed":
                    self._failed_for_good(held, attempt)
            elif outcome.kind == "stopped":
                status = self.spool.requeue(held)
                log.info("stopped %s (%s) -> %s", name, outcome.error, status)
            else:
                log.warning("dropped %s: %s", name, outcome.error)
        except (OSError, InfoFileError) as error:
            # The lease will bring the chunk back; losing the node over one file would be worse.
            log.error("could not record %s for %s: %s", outcome.kind, name, error)


    # ---- failure policy and notices ----------------------------------------------------------------

    def _count_failure(self, info: InfoFile, error: str) -> None:
        """A node that fails `blocklist_after` chunks of one job in a row stops taking that job."""
        job_id = info.job
        if job_id is None:
            return
        streak = self.streaks[job_id] = self.streaks.get(job_id, 0) + 1
        if streak < self.settings.failure.blocklist_after or job_id in self.blocklisted:
            return
        reason = f"{streak} chunks failed in a row on {self.name}; the last: {error}"
        self.spool.add_to_blocklist(job_id, self.name, reason)
        self.blocklisted |= {job_id}
        log.warning("blocklisted for job %s (render retry %s clears it): %s", job_id, job_id, reason)
        blocked = set(self.spool.blocklisted_nodes().get(job_id, {}))
        if not any(name not in blocked and all(req.satisfied_by(caps) for req in info.requires)
                   for name, caps in self.other_nodes.items()):
            nodes = ", ".join(sorted(blocked))
            self._fail_job(job_id, f"every live node that can run it is blocklisted for it ({nodes})")

    def _failed_for_good(self, held: Held, attempt: Attempt) -> None:
        """A chunk used up its attempts: the `error` hooks, then the job fails if too many did or none is left."""
        self._run_error_hooks(held, attempt)
        job = self.spool.read_job(held.info.job) if held.info.job else None
        if job is None:
            return
        failed = self.spool.failed_count(job.id)
        limit = job.settings.get("max_failed_chunks") or self.settings.failure.max_failed_chunks
        if failed >= limit:
            self._fail_job(job.id, f"{failed} chunks failed for good (the limit is {limit})")
        elif not self.spool.pending_chunks(job.id):
            self._fail_job(job.id, f"{failed} failed for good and nothing else of it is left to run")

    def _run_error_hooks(self, held: Held, attempt: Attempt) -> None:
        """The `error` hooks, once, writing into the failed attempt's log; their own failure is only logged."""
        hooks = self._hooks("error", held.info)
        if not hooks:
            return
        places = self._places(held.info)
        env = {**self._environment(held, attempt.log or "", places), "RENDERD_ERROR": attempt.error}
        log_fd = os.open(self.spool.root / attempt.log, os.O_WRONLY | os.O_APPEND) if attempt.log else _devnull()
        self.deadline = time.monotonic() + HOOK_TIMEOUT
        try:
            outcome = self._run_hooks("error", held, log_fd, env, places, heartbeat=False)
        finally:
            os.close(log_fd)
        if outcome is not None:
            log.error("%s: %s", held.chunk_id, outcome.error)

    def _fail_job(self, job_id: str, why: str) -> None:
        """Mark a job failed (its queued chunks wait for `render retry`) and tell its owner, once."""
        changed = self.spool.update_job(
            job_id, lambda job: replace(job, status="failed", error=why) if job.status == "active" else None)
        if changed is not None:
            self.held_jobs |= {job_id}  # at once: this node's next claim must not take another of its chunks
            log.warning("job %s failed: %s", job_id, why)
            self._announce(job_id, "failed", why)

    def _announce(self, job_id: str, event: str, why: str | None = None) -> None:
        """Tell the job's owner it finished or failed: exactly one node in the farm does, once per event."""
        if not self.spool.claim_notice(job_id, event, {"node": self.name, "at": now_text(), "state": "sending"}):
            return
        job = self.spool.read_job(job_id)
        record: dict[str, object] = {"job": job_id, "event": event, "node": self.name, "at": now_text()}
        if why:
            record["why"] = why
        mail = self.settings.mail
        if job is None or not job.owner:
            record["state"] = "nobody to tell (the job has no --owner)"
        elif mail is None:
            record["state"] = f"not mailed to {job.owner}: no mail: section in {self.spool.settings_path.name}"
        else:
            record["to"] = job.owner
            try:
                send(mail, self._message(mail, job, event, why))
                record["state"] = f"mailed to {job.owner}"
            except MailError as error:
                record["state"] = f"not mailed: {error}"
                log.error("could not mail the owner of %s: %s", job_id, error)
        self.spool.record_notice(job_id, event, record)
        log.info("job %s %s: %s", job_id, event, record["state"])

    def _message(self, mail: MailSettings, job: Job, event: str, why: str | None) -> EmailMessage:
        completions = self.spool.job_completions(job.id)
        submitted = fmt.parse_time(job.submitted)
        try:
            frame_count = len(fmt.FrameRange.parse(job.frames)) if job.frames else job.chunks
        except ValueError:
            frame_count = job.chunks
        facts = JobFacts(
            id=job.id, source=job.source, scene=job.scene, frames=job.frames, frame_count=frame_count,
            chunks=job.chunks, submitted=job.submitted,
            seconds=time.time() - submitted if submitted else None,
            output=self._output_folder(job, self._places(InfoFile(command="-", job=job.id))),
            node_names=tuple(sorted({record.node for record in completions})), farm=str(self.spool.root),
        )
        assert job.owner is not None
        if event == "finished":
            return finished_message(mail, job.owner, facts)
        failures = []
        for name in self.spool.job_files(self.spool.failed, job.id):
            entry = self.spool.read_entry(self.spool.failed, name)
            if entry is None or entry.info is None:
                continue
            info = entry.info
            last = info.history[-1] if info.history else None
            failures.append(ChunkFailure(
                chunk=name.removesuffix(".yaml"), frames=str(info.frames) if info.frames else None,
                node=last.node if last else None, error=last.error if last else info.error or "failed",
                log=info.log, log_tail=log_tail(self.spool.root / info.log) if info.log else "(no log)",
            ))
        return failed_message(mail, job.owner, facts, failures, why)


def _devnull() -> int:
    return os.open(os.devnull, os.O_WRONLY)


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _chunk_job(name: str) -> str | None:
    """The job of a frame chunk's file name (JOB-c0003.yaml), or None for a step or a loose file."""
    match = _CHUNK_RE.match(name)
    return match[1] if match else None


_CHUNK_RE = re.compile(r"^(.+)-c\d+\.yaml$")

