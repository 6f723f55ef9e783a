"""The spool: the shared folder that is the whole farm. Only this module reads or writes spool files.

Layout (every folder created on demand):

    queue/*.yaml      chunks waiting to run; people drop and edit files here
    running/*.yaml    chunks held by a node (moved here by an atomic rename: the claim)
    failed/*.yaml     chunks that used up their attempts
    jobs/JOB.yaml     job manifests
    done/JOB/*.yaml   one completion record per finished chunk
    nodes/NAME.yaml   daemon registrations and heartbeats
    logs/JOB/*.log    one log per chunk attempt
    output/JOB/       frames, when a job names no other output
    locks/            filelock files (a fixed set, never deleted)

A chunk's state is the folder it is in, so an idle daemon never has to look inside files it cannot
take, and a claim is a rename: exactly one node wins it even where the shared filesystem does not
share `flock` locks between hosts. The filelock lock around every transition orders the daemons of
one host (and of hosts whose filesystem shares locks) so that a transition re-reads the file first
and never writes over a hand edit it has not read.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from glob import escape as glob_escape
from pathlib import Path

import yaml
from filelock import FileLock, Timeout

from renderd.errors import InfoFileError, SpoolError
from renderd.infofiles import format as fmt
from renderd.infofiles.format import Attempt, Claim, InfoFile, Requirement
from renderd.infofiles.records import Completion, Job, NodeRecord, dump_record, parse_record
from renderd.scheduling import Candidate

LOCK_BUCKETS = 64
LOCK_TIMEOUT = 30.0
TEMP_MARK = ".tmp-"
LOOSE = "_loose"
PLAN_MARK = "renderd-plan-1"  # the done/ and logs/ folder of info files that belong to no job

Signature = tuple[int, int, int]  # inode, mtime_ns, size: changes whenever anyone rewrites the file


def signature(st: os.stat_result) -> Signature:
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def write_atomic(path: Path, text: str | bytes, exclusive: bool = False) -> Signature:
    """Write `path` whole or not at all: a temp file in the same folder, fsync, rename.

    With `exclusive`, fail with FileExistsError instead of replacing an existing file (link, not rename).
    Returns the new file's signature, read from the temp file before it takes the name.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    temp = path.with_name(f".{path.name}{TEMP_MARK}{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            sig = signature(os.fstat(handle.fileno()))
        if exclusive:
            os.link(temp, path)
            os.unlink(temp)
        else:
            os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return sig


def _free_name(folder: Path, name: str) -> str:
    """`name`, or `name~2.yaml`, `name~3.yaml`... whichever does not exist in `folder` yet."""
    candidate, counter = name, 1
    while os.path.lexists(folder / candidate):
        counter += 1
        candidate = f"{name.removesuffix('.yaml')}~{counter}.yaml"
    return candidate


def default_spool() -> Path:
    """`$RENDERD_SPOOL`, else a per-user folder, so one workstation works with no set-up."""
    if os.environ.get("RENDERD_SPOOL"):
        return Path(os.environ["RENDERD_SPOOL"])
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "renderd" / "spool"


def now_text() -> str:
    return fmt.format_time(datetime.now(UTC))


@dataclass
class Held:
    """A chunk this node holds in running/: its info as last read or written, and that file's signature."""

    name: str
    info: InfoFile
    sig: Signature

    @property
    def chunk_id(self) -> str:
        return self.name.removesuffix(".yaml")


@dataclass(frozen=True)
class Entry:
    """One file in a state folder: its parsed info, or why it could not be parsed."""

    name: str
    sig: Signature | None
    mtime: float
    info: InfoFile | None = None
    error: InfoFileError | None = None

    @property
    def planned(self) -> bool:
        """Not read, because its job's plan vouches that it is still exactly as `render add` wrote it."""
        return self.info is None and self.error is None


@dataclass(frozen=True)
class PlannedChunk:
    """One chunk as `render add` wrote it: the file's signature then, and what the scheduler needs of it."""

    sig: Signature
    candidate: Candidate


# Callables the daemon passes to transitions, so the spool stays free of scheduling policy.
ClaimMaker = Callable[[InfoFile], Claim]
WantCheck = Callable[[InfoFile], bool]
StaleCheck = Callable[[Entry], bool]
AttemptMaker = Callable[[Entry], Attempt]


class Spool:
    """Paths, atomic writes and every state transition of spool files."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.queue = self.root / "queue"
        self.running = self.root / "running"
        self.failed = self.root / "failed"
        self.jobs = self.root / "jobs"
        self.done = self.root / "done"
        self.nodes = self.root / "nodes"
        self.logs = self.root / "logs"
        self.output = self.root / "output"
        self.locks = self.root / "locks"
        self.blocklist = self.root / "blocklist"  # blocklist/JOB/NODE.yaml: a node that stopped taking a job
        self.notices = self.root / "notices"  # notices/JOB.EVENT.yaml: a job's finished/failed notice, sent once
        self.settings_path = self.root / "settings.yaml"
        self._lock_objects: dict[int, FileLock] = {}

    # ---- set-up -------------------------------------------------------------------------------

    def ensure(self) -> Spool:
        """Create whatever folders are missing; raise SpoolError when the spool cannot be used."""
        if self.root.exists() and not self.root.is_dir():
            raise SpoolError(f"{self.root}: the spool is not a folder")
        try:
            for folder in (self.queue, self.running, self.failed, self.jobs, self.done, self.nodes, self.logs,
                           self.output, self.locks, self.blocklist, self.notices):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SpoolError(f"{self.root}: cannot create the spool: {error.strerror}") from None
        if not os.access(self.queue, os.W_OK):
            raise SpoolError(f"{self.queue}: the spool is not writable")
        return self

    def exists(self) -> bool:
        return self.queue.is_dir()

    @contextlib.contextmanager
    def lock(self, name: str, wait: bool = True) -> Iterator[None]:
        """The lock for one chunk name: one of a fixed set of lock files, so none pile up.

        With `wait=False` a held lock raises filelock.Timeout at once (another node is busy with it).
        """
        bucket = zlib.crc32(name.encode()) % LOCK_BUCKETS
        lock = self._lock_objects.get(bucket)
        if lock is None:
            lock = FileLock(self.locks / f"bucket-{bucket:02d}.lock", thread_local=False)
            self._lock_objects[bucket] = lock
        with lock.acquire(timeout=LOCK_TIMEOUT, poll_interval=0.002, blocking=wait):
            yield

    # ---- reading state folders ------------------------------------------------------------------

    def read_entry(self, folder: Path, name: str) -> Entry | None:
        """Read and parse one info file; None when it is gone."""
        path = folder / name
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if path.is_symlink():
                return Entry(name, None, 0.0, error=InfoFileError(str(path), "dangling symlink"))
            return None
        except OSError as error:
            return Entry(name, None, 0.0, error=InfoFileError(str(path), f"cannot read: {error.strerror}"))
        return self._parse_entry(path, st)

    def _parse_entry(self, path: Path, st: os.stat_result, split_command: bool = True) -> Entry | None:
        sig = signature(st)
        if stat.S_ISDIR(st.st_mode):
            return Entry(path.name, sig, st.st_mtime, error=InfoFileError(str(path), "is a folder, not a file"))
        if not stat.S_ISREG(st.st_mode):
            return Entry(path.name, sig, st.st_mtime, error=InfoFileError(str(path), "not a regular file"))
        if st.st_size > fmt.MAX_INFO_FILE_BYTES:
            return Entry(path.name, sig, st.st_mtime,
                         error=InfoFileError(str(path), f"file is larger than {fmt.MAX_INFO_FILE_BYTES} bytes"))
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            return Entry(path.name, sig, st.st_mtime, error=InfoFileError(str(path), f"cannot read: {error.strerror}"))
        try:
            return Entry(path.name, sig, st.st_mtime, info=fmt.parse(data, str(path), split_command))
        except InfoFileError as error:
            return Entry(path.name, sig, st.st_mtime, error=error)

    def scan(
        self,
        folder: Path,
        cache: dict[str, Entry] | None = None,
        names_only: bool = False,
        quick: bool = False,
        planned: Callable[[str, Signature], bool] | None = None,
    ) -> dict[str, Entry]:
        """Every `*.yaml` in a state folder, parsing only files whose signature changed since `cache`.

        With `names_only`, files already in `cache` are taken as they were without even a stat: a cheap
        look for files that came or went, which cannot see an edit in place. With `quick`, commands are
        not split (see format.parse): what the scheduler needs, for a fraction of the cost. Files for which
        `planned(name, signature)` is true are not read at all (see Entry.planned).
        """
        cache = cache or {}
        found: dict[str, Entry] = {}
        try:
            iterator = os.scandir(folder)
        except FileNotFoundError:
            return found
        with iterator:
            for dirent in iterator:
                name = dirent.name
                if not name.endswith(".yaml") or name.startswith("."):
                    continue
                if names_only and name in cache:
                    found[name] = cache[name]
                    continue
                try:
                    st = dirent.stat()
                except FileNotFoundError:
                    if dirent.is_symlink():
                        problem = InfoFileError(str(folder / name), "dangling symlink")
                        found[name] = Entry(name, None, 0.0, error=problem)
                    continue
                except OSError as error:
                    found[name] = Entry(name, None, 0.0,
                                        error=InfoFileError(str(folder / name), f"cannot read: {error.strerror}"))
                    continue
                old = cache.get(name)
                if old is not None and old.sig == signature(st):
                    found[name] = old
                    continue
                sig = signature(st)
                if planned is not None and stat.S_ISREG(st.st_mode) and planned(name, sig):
                    found[name] = Entry(name, sig, st.st_mtime)
                    continue
                entry = self._parse_entry(folder / name, st, split_command=not quick)
                if entry is not None:
                    found[name] = entry
        return found

    def folder_mtime(self, folder: Path) -> int:
        try:
            return os.stat(folder).st_mtime_ns
        except FileNotFoundError:
            return 0

    # ---- transitions ----------------------------------------------------------------------------

    def claim(self, name: str, make_claim: ClaimMaker, still_wanted: WantCheck) -> Held | InfoFileError | None:
        """Move queue/NAME to running/ under its lock, after re-reading it; None when it is no longer ours to take,
        the error when the file, read in full, turns out not to be usable.

        `still_wanted(info)` re-checks the freshly read file (a person may have just edited it), and
        `make_claim(info)` returns the claim to record. The rename is the claim itself: of two nodes that
        both got here (hosts whose locks do not meet), only one rename succeeds.
        """
        source = self.queue / name
        if not os.path.lexists(source):  # cheap skip for files other nodes already took
            return None
        try:
            with self.lock(name, wait=False):
                return self._claim_locked(name, make_claim, still_wanted)
        except Timeout:
            return None  # another node is claiming it (or one of its bucket-mates) right now: try the next

    def _claim_locked(self, name: str, make_claim: ClaimMaker, still_wanted: WantCheck) -> Held | InfoFileError | None:
        source = self.queue / name
        target = self.running / name
        entry = self.read_entry(self.queue, name)
        if entry is not None and entry.error is not None:
            return entry.error
        if entry is None or entry.info is None or not still_wanted(entry.info):
            return None
        if os.path.lexists(target) or os.path.islink(source):
            return None
        try:
            os.rename(source, target)
        except FileNotFoundError:
            return None
        # A person's editor may have saved between our read and the rename: if so, read what we now own.
        info = entry.info
        with contextlib.suppress(OSError):
            if signature(os.stat(target)) != entry.sig:
                after = self.read_entry(self.running, name)
                info = entry.info if after is None or after.info is None else after.info
        claimed = info.with_changes(
            status="running", attempts=info.attempts + 1, claim=make_claim(info), error=info.error
        )
        sig = write_atomic(target, fmt.dump(claimed))
        return Held(name, claimed, sig)

    def update_held(self, held: Held, claim: Claim) -> str:
        """Rewrite a held chunk's claim (heartbeat, progress). Returns 'ok', 'cancelled' or 'lost'.

        If someone changed the file since we last wrote it, their edit is read and kept (we only
        own the claim keys); a file that no longer parses is left alone until it is fixed.
        """
        path = self.running / held.name
        with self.lock(held.name):
            current = self._reread_held(held)
            if current in ("cancelled", "lost"):
                return current
            if current == "unreadable":
                return "ok"
            held.info = held.info.with_changes(claim=claim)
            held.sig = write_atomic(path, fmt.dump(held.info))
            return "ok"

    def _reread_held(self, held: Held) -> str:
        path = self.running / held.name
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return "cancelled"
        if signature(st) == held.sig:
            return "same"
        entry = self._parse_entry(path, st)
        if entry is None:
            return "cancelled"
        if entry.info is None:
            return "unreadable"
        mine = held.info.claim
        theirs = entry.info.claim
        if mine is not None and theirs is not None and (theirs.node, theirs.pid) != (mine.node, mine.pid):
            return "lost"
        # keep the person's edit, with our claim
        held.info = entry.info.with_changes(claim=mine, status="running", attempts=held.info.attempts)
        held.sig = entry.sig or held.sig
        return "edited"

    def complete(self, held: Held, completion: Completion) -> bool:
        """Record the completion, then delete the info file, both under its lock. False if it was cancelled."""
        with self.lock(held.name):
            state = self._reread_held(held)
            if state in ("cancelled", "lost"):
                if state == "lost":  # another node took it over; still record that the frames exist
                    self._write_completion(completion)
                return False
            self._write_completion(completion)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.running / held.name)
            return True

    def _write_completion(self, completion: Completion) -> None:
        folder = self._folder(self.done / (completion.job or LOOSE))
        write_atomic(folder / f"{completion.chunk}.yaml", dump_record(completion))

    def fail(self, held: Held, attempt: Attempt) -> str:
        """Record a failed attempt; requeue the chunk, or move it to failed/ once its attempts are used up.

        Returns the new status ('queued' or 'failed'), or 'cancelled'/'lost' when the file was no longer ours.
        """
        with self.lock(held.name):
            state = self._reread_held(held)
            if state in ("cancelled", "lost"):
                return state
            if state == "unreadable":
                return self._return_unread(held.name)
            info = held.info
            history = (*info.history, attempt)
            error = f"attempt {info.attempts} on {attempt.node}: {attempt.error}"
            final = info.attempts >= info.max_attempts
            updated = info.with_changes(
                status="failed" if final else "queued", claim=None, history=history, error=error, log=attempt.log
            )
            self._move(held.name, self.running, self.failed if final else self.queue, updated)
            return updated.status

    def requeue(self, held: Held) -> str:
        """Put a chunk back unchanged (the node is stopping: not the chunk's fault, so no attempt is counted)."""
        with self.lock(held.name):
            state = self._reread_held(held)
            if state in ("cancelled", "lost"):
                return state
            if state == "unreadable":
                return self._return_unread(held.name)
            updated = held.info.with_changes(status="queued", claim=None, attempts=max(0, held.info.attempts - 1))
            self._move(held.name, self.running, self.queue, updated)
            return "queued"

    def _return_unread(self, name: str) -> str:
        """A person broke the running file while it ran: hand it back to the queue exactly as they left it,
        where it is reported as malformed until fixed (writing ours over it would lose their edit)."""
        os.rename(self.running / name, self.queue / _free_name(self.queue, name))
        return "queued"

    def _move(self, name: str, source_dir: Path, target_dir: Path, info: InfoFile) -> str:
        """Write `info` over source_dir/name, then rename it into target_dir without replacing a file there."""
        source = source_dir / name
        write_atomic(source, fmt.dump(info))
        target_name = _free_name(target_dir, name)  # a person may have dropped a file of that name meanwhile
        os.rename(source, target_dir / target_name)
        return target_name

    def release_stale(self, name: str, is_stale: StaleCheck, attempt_for: AttemptMaker) -> str | None:
        """Take back a running chunk whose holder is gone: re-check under the lock, then requeue or fail it."""
        with self.lock(name):
            entry = self.read_entry(self.running, name)
            if entry is None or entry.info is None or not is_stale(entry):
                return None
            info = entry.info
            attempt = attempt_for(entry)
            final = info.attempts >= info.max_attempts
            updated = info.with_changes(
                status="failed" if final else "queued",
                claim=None,
                history=(*info.history, attempt),
                error=f"attempt {info.attempts} on {attempt.node}: {attempt.error}",
                log=attempt.log or info.log,
            )
            self._move(name, self.running, self.failed if final else self.queue, updated)
            return updated.status

    def retry_failed(self, name: str) -> bool:
        """Move failed/NAME back to the queue with fresh attempts (its history kept)."""
        with self.lock(name):
            entry = self.read_entry(self.failed, name)
            if entry is None or entry.info is None:
                return False
            self._move(name, self.failed, self.queue, entry.info.with_changes(status="queued", attempts=0))
            return True

    # ---- jobs, completions, logs ------------------------------------------------------------------

    def create_job(
        self, job: Job, chunks: list[tuple[str, InfoFile]], finishing: list[tuple[str, InfoFile]] | None = None
    ) -> None:
        """Write the manifest (exclusively: FileExistsError if the id is taken), every chunk, then the plan
        and the finishing steps (which wait for the chunks, and are not in the plan)."""
        write_atomic(self.jobs / f"{job.id}.yaml", dump_record(job), exclusive=True)
        # Names carry the job id, which the exclusive manifest made ours. Several writers at once let the
        # filesystem commit their fsyncs together, which halves the time a large job takes to queue.
        with ThreadPoolExecutor(max_workers=8) as pool:
            sigs = list(pool.map(lambda item: write_atomic(self.queue / item[0], fmt.dump(item[1])), chunks))
        # The plan lets every daemon order these chunks without reading them: a file whose signature still
        # matches is as written here. Any rewrite (a hand edit, a requeue) changes it, and is read in full.
        submitted = fmt.parse_time(job.submitted) or time.time()
        requires = ",".join(str(req) for req in chunks[0][1].requires) if chunks else ""
        memory = chunks[0][1].memory if chunks else None
        lines = [f"{PLAN_MARK} {submitted!r} {requires or '-'} {memory or '-'}\n"]
        lines += [
            f"{name} {sig[0]} {sig[1]} {sig[2]} {info.first_frame} {info.priority}\n"
            for (name, info), sig in zip(chunks, sigs, strict=True)
        ]
        write_atomic(self.jobs / f"{job.id}.plan", "".join(lines))
        for name, info in finishing or []:
            write_atomic(self.queue / name, fmt.dump(info))

    def read_plan(self, job_id: str) -> dict[str, PlannedChunk]:
        """The chunks `render add` recorded for a job, by file name (empty when there is no usable plan)."""
        plan: dict[str, PlannedChunk] = {}
        try:
            header, *lines = (self.jobs / f"{job_id}.plan").read_text().splitlines()
            mark, submitted_text, requires_text, *more = header.split()
            if mark != PLAN_MARK:
                return plan
            submitted = float(submitted_text)
            requires = tuple(Requirement.parse(r) for r in requires_text.split(",") if r != "-")
            memory = int(more[0]) if more and more[0] != "-" else None
            for line in lines:
                name, ino, mtime, size, frame, priority = line.split()
                candidate = Candidate(name, int(priority), submitted, int(frame), requires, False, frozenset(), job_id,
                                      memory=memory)
                plan[name] = PlannedChunk((int(ino), int(mtime), int(size)), candidate)
        except (OSError, UnicodeDecodeError, ValueError):
            return {}  # no plan, or a damaged one: the files are simply read
        return plan

    def scan_jobs(self, cache: dict[str, tuple[Signature, Job | None]]) -> dict[str, tuple[Signature, Job | None]]:
        """Job manifests by file name, re-reading only those whose signature changed (None: unreadable)."""
        found: dict[str, tuple[Signature, Job | None]] = {}
        with contextlib.suppress(FileNotFoundError), os.scandir(self.jobs) as entries:
            for dirent in entries:
                if dirent.name.endswith(".yaml") and not dirent.name.startswith("."):
                    with contextlib.suppress(OSError):
                        found[dirent.name] = self._job_entry(Path(dirent.path), dirent.stat(), cache.get(dirent.name))
        return found

    def scan_job(
        self, name: str, cached: tuple[Signature, Job | None] | None
    ) -> tuple[Signature, Job | None] | None:
        """One manifest as `scan_jobs` reads it: `cached` itself when unchanged, None when it is gone."""
        path = self.jobs / name
        try:
            return self._job_entry(path, path.stat(), cached)
        except OSError:
            return None

    @staticmethod
    def _job_entry(
        path: Path, st: os.stat_result, cached: tuple[Signature, Job | None] | None
    ) -> tuple[Signature, Job | None]:
        sig = signature(st)
        if cached is not None and cached[0] == sig:
            return cached
        try:
            return sig, parse_record(Job, path.read_bytes(), str(path))
        except (InfoFileError, OSError):
            return sig, None

    @staticmethod
    def _folder(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)  # every time: a person may have deleted it
        return path

    def job_files(self, folder: Path, job_id: str) -> list[str]:
        """The info files of one job in a state folder (its chunks and finishing steps)."""
        return sorted(path.name for path in folder.glob(f"{glob_escape(job_id)}-*.yaml"))

    def set_priority(self, name: str, priority: int) -> bool:
        """Rewrite a queued file's priority under its lock, after reading it; False if it is gone or unusable."""
        with self.lock(name):
            entry = self.read_entry(self.queue, name)
            if entry is None or entry.info is None:
                return False
            write_atomic(self.queue / name, fmt.dump(entry.info.with_changes(priority=priority)))
            return True

    def remove(self, folder: Path, name: str) -> bool:
        """Delete an info file under its lock (a cancelled chunk); False if it was already gone."""
        with self.lock(name):
            try:
                os.unlink(folder / name)
            except FileNotFoundError:
                return False
            return True

    def remove_job_records(self, job_id: str) -> None:
        """A finished or cancelled job's manifest, plan, completion records, failed chunks, logs, blocklist and
        notices; never its output."""
        for name in self.job_files(self.failed, job_id):
            self.remove(self.failed, name)
        for folder in (self.done / job_id, self.logs / job_id, self.blocklist / job_id):
            shutil.rmtree(folder, ignore_errors=True)
        self.clear_notices(job_id)
        for suffix in (".plan", ".yaml"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.jobs / f"{job_id}{suffix}")

    def update_job(self, job_id: str, change: Callable[[Job], Job | None]) -> Job | None:
        """Rewrite a job's manifest under its lock with `change` (which returns None to leave it); the result."""
        with self.lock(f"{job_id}.job"):
            job = self.read_job(job_id)
            updated = change(job) if job is not None else None
            if updated is not None and updated != job:
                self.write_job(updated)
            return updated

    def failed_count(self, job_id: str) -> int:
        return len(self.job_files(self.failed, job_id))

    def pending_chunks(self, job_id: str) -> int:
        """A job's frame chunks still queued or running (its steps wait for them, so they do not count)."""
        chunk = re.compile(re.escape(job_id) + r"-c\d+\.yaml$")
        return sum(1 for folder in (self.queue, self.running) for name in os.listdir(folder) if chunk.match(name))

    def step_state(self, job_id: str, step: str) -> str:
        """'done', 'failed' or 'pending' for a step (JOB-video) of a job."""
        if (self.done / job_id / f"{step}.yaml").exists():
            return "done"
        return "failed" if (self.failed / f"{step}.yaml").exists() else "pending"

    # ---- blocklist and notices -------------------------------------------------------------------

    def add_to_blocklist(self, job_id: str, node: str, reason: str) -> None:
        folder = self._folder(self.blocklist / job_id)
        write_atomic(folder / f"{node}.yaml", fmt.dump_mapping({"node": node, "job": job_id, "reason": reason,
                                                                "at": now_text()}))

    def blocklisted_nodes(self) -> dict[str, dict[str, str]]:
        """Nodes blocklisted per job: {job: {node: reason}}."""
        result: dict[str, dict[str, str]] = {}
        with contextlib.suppress(FileNotFoundError):
            for folder in self.blocklist.iterdir():
                for path in folder.glob("*.yaml"):
                    reason = ""
                    with contextlib.suppress(OSError, yaml.YAMLError, AttributeError):
                        reason = str(fmt.load_mapping(path.read_bytes()).get("reason", ""))
                    result.setdefault(folder.name, {})[path.stem] = reason
        return result

    def jobs_blocklisting(self, node: str) -> set[str]:
        """The jobs `node` is blocklisted for (one stat per job that has a blocklist)."""
        try:
            return {folder.name for folder in self.blocklist.iterdir() if (folder / f"{node}.yaml").exists()}
        except FileNotFoundError:
            return set()

    def clear_blocklist(self, job_id: str) -> int:
        folder = self.blocklist / job_id
        count = len(list(folder.glob("*.yaml"))) if folder.is_dir() else 0
        shutil.rmtree(folder, ignore_errors=True)
        return count

    def claim_notice(self, job_id: str, event: str, details: dict[str, object]) -> bool:
        """Take the one right to announce `event` for a job: an exclusive create, so one node in the farm wins."""
        try:
            write_atomic(self._folder(self.notices) / f"{job_id}.{event}.yaml", fmt.dump_mapping(details),
                         exclusive=True)
        except FileExistsError:
            return False
        return True

    def record_notice(self, job_id: str, event: str, details: dict[str, object]) -> None:
        """How the announcement went (sent, or why not), over the claim."""
        write_atomic(self.notices / f"{job_id}.{event}.yaml", fmt.dump_mapping(details))

    def clear_notices(self, job_id: str) -> None:
        for path in self.notices.glob(f"{glob_escape(job_id)}.*.yaml"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def settings_signature(self) -> Signature | None:
        """The farm settings file's signature (a stat), None when there is none."""
        try:
            return signature(os.stat(self.settings_path))
        except FileNotFoundError:
            return None

    def read_settings(self) -> tuple[Signature | None, bytes]:
        """The farm settings file's signature and bytes (None and empty when there is none)."""
        try:
            with self.settings_path.open("rb") as handle:
                return signature(os.fstat(handle.fileno())), handle.read()
        except FileNotFoundError:
            return None, b""

    def write_job(self, job: Job) -> None:
        write_atomic(self.jobs / f"{job.id}.yaml", dump_record(job))

    def read_job(self, job_id: str) -> Job | None:
        path = self.jobs / f"{job_id}.yaml"
        try:
            return parse_record(Job, path.read_bytes(), str(path))
        except FileNotFoundError:
            return None

    def list_jobs(self) -> tuple[list[Job], list[InfoFileError]]:
        jobs, problems = [], []
        for path in sorted(self.jobs.glob("*.yaml")):
            try:
                jobs.append(parse_record(Job, path.read_bytes(), str(path)))
            except InfoFileError as error:
                problems.append(error)
            except OSError as error:
                problems.append(InfoFileError(str(path), f"cannot read: {error.strerror}"))
        return jobs, problems

    def job_completions(self, job_id: str) -> list[Completion]:
        records = []
        for path in sorted((self.done / job_id).glob("*.yaml")):
            with contextlib.suppress(InfoFileError, OSError):
                records.append(parse_record(Completion, path.read_bytes(), str(path)))
        return records

    def completions(self) -> dict[str, list[Completion]]:
        """Completion records by job id (LOOSE for chunks that had none)."""
        result: dict[str, list[Completion]] = {}
        if not self.done.is_dir():
            return result
        for folder in self.done.iterdir():
            records = []
            for path in folder.glob("*.yaml"):
                with contextlib.suppress(InfoFileError, OSError):
                    records.append(parse_record(Completion, path.read_bytes(), str(path)))
            result[folder.name] = records
        return result

    def chunk_counts(self, job_id: str) -> tuple[int, int]:
        """How many of a job's frame chunks are done, and how many failed for good."""
        chunk = re.compile(re.escape(job_id) + r"-c\d+\.yaml$")
        try:
            done = sum(1 for name in os.listdir(self.done / job_id) if chunk.match(name))
        except FileNotFoundError:
            done = 0
        failed = sum(1 for name in os.listdir(self.failed) if chunk.match(name))
        return done, failed

    def open_log(self, held: Held, node: str) -> tuple[str, int]:
        """Create the log for this attempt; returns its path relative to the spool and an open descriptor."""
        folder = held.info.job or LOOSE
        self._folder(self.logs / folder)
        relative = f"logs/{folder}/{held.chunk_id}.{held.info.attempts}.{node}.log"
        fd = os.open(self.root / relative, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return relative, fd

    # ---- the farm's token ----------------------------------------------------------------------

    def token(self) -> str:
        """The secret that control requests must carry: $RENDERD_TOKEN, else SPOOL/token, made on first use.

        Whoever can read the spool can read it: the spool is the farm's trust boundary.
        """
        if os.environ.get("RENDERD_TOKEN"):
            return os.environ["RENDERD_TOKEN"]
        path = self.root / "token"
        with contextlib.suppress(FileExistsError):
            write_atomic(path, secrets.token_hex(24) + "\n", exclusive=True)
        return path.read_text().strip()

    # ---- nodes ----------------------------------------------------------------------------------

    def write_node(self, record: NodeRecord) -> None:
        write_atomic(self.nodes / f"{record.name}.yaml", dump_record(record))

    def read_node(self, name: str) -> NodeRecord | None:
        path = self.nodes / f"{name}.yaml"
        try:
            return parse_record(NodeRecord, path.read_bytes(), str(path))
        except (FileNotFoundError, InfoFileError):
            return None

    def list_nodes(self) -> list[NodeRecord]:
        nodes = []
        for path in sorted(self.nodes.glob("*.yaml")):
            with contextlib.suppress(InfoFileError, OSError):
                nodes.append(parse_record(NodeRecord, path.read_bytes(), str(path)))
        return nodes

    def remove_stale_temps(self, older_than: float = 3600.0) -> int:
        """Delete temp files left by writers that died mid-write (they never carry a `.yaml` name)."""
        removed = 0
        cutoff = time.time() - older_than
        for folder in (self.queue, self.running, self.failed, self.jobs, self.nodes, *self.done.glob("*")):
            with contextlib.suppress(OSError), os.scandir(folder) as entries:
                for dirent in entries:
                    if TEMP_MARK in dirent.name and dirent.name.startswith("."):
                        try:
                            if dirent.stat(follow_symlinks=False).st_mtime < cutoff:
                                os.unlink(dirent.path)
                                removed += 1
                        except OSError as error:
                            if error.errno != errno.ENOENT:
                                raise
        return removed

