"""Benchmark renderd's spool: throughput, per-chunk overhead, pick-up latency, idle cost, and two peer queues.

What it measures, each on a fresh spool in a temporary folder (removed at the end):

1. Throughput of no-op chunks (`true`) with 1, 4 and 16 daemons: the daemons are started idle and
   registered first, then `render add --cmd true --frames 1-N --chunk 1` is run and the clock runs from
   the start of that command until all N completion records exist in done/JOB/. Reported: chunks/s,
   the daemons' own CPU time per chunk (psutil user+system of the daemon processes, sampled after
   registration and again when the last record exists; the CPU of the commands they ran is counted by
   the kernel as their children's and is left out, and shown beside the cost of running `true` from a
   plain Python loop), and duplicate runs (attempt logs in logs/JOB/ beyond one per chunk, or
   completion records with attempts > 1). One extra run with 16 daemons has every chunk append
   $RENDERD_CHUNK to a file, and counts the lines per chunk: each must appear exactly once.
2. Latency from an info file dropped into queue/ (written under a dot name, then renamed) to its
   command starting, with 4 idle daemons at the default poll (0.5 s): the command writes `date +%s.%N`
   to a file, and the latency is that time minus the time just before the rename.
3. One idle daemon beside 10,000 queued info files it cannot take (`requires: [nonexistent-capability]`):
   after its start and first scan, its CPU percent of one core over 30 s and its resident memory; then
   three runnable files dropped 1 s apart beside them, timed as in 2 (beside a large queue a new file
   waits for the daemon's rate-limited rescan, so this shows what that limit costs in latency).
4. Peers doing the same work with the same number of worker processes: the `dirq` directory queue
   (QueueSimple, each worker loops over the queue, locks, runs `true`, removes) and `huey` with its
   SQLite storage (process workers, polling between 0.1 s and 0.5 s). Their clock runs from the first
   enqueue to the last task done, with the workers already started and idle.

It asserts nothing: it is a benchmark and only prints figures (and saves them with --json).

Run from the repository (renderd installed, e.g. `pip install -e '.[bench]'` for dirq and huey):

    python scripts/bench_spool.py [--quick] [--json out.json]

The default run takes two to three minutes on two cores, --quick about one. Figures from one run to the next
on a shared two-core machine vary by tens of percent: compare runs made back to back.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib
import json
import math
import multiprocessing
import os
import platform
import random
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
RENDERD = [sys.executable, "-m", "renderd.daemon_cli"]
RENDER = [sys.executable, "-m", "render_tui.cli"]
WAIT_LIMIT = 300.0  # seconds any one wait may take before the benchmark gives up with an error
STOP_TIMEOUT = 15.0  # SIGTERM to SIGKILL for a process the benchmark started
HUEY_APP = '''\
import os
import subprocess

from huey import SqliteHuey

huey = SqliteHuey(filename=os.environ["BENCH_HUEY_DB"])


@huey.task()
def run_true():
    subprocess.run(["true"], check=False)
    return 1
'''


class BenchError(Exception):
    """Something did not happen in time, or a process died: the benchmark cannot go on."""


@dataclass(frozen=True)
class Sizes:
    true_cases: tuple[tuple[int, int], ...]  # (daemons, chunks)
    once_case: tuple[int, int]  # (daemons, chunks) for the run-each-chunk-exactly-once check
    drops: int
    idle_files: int
    idle_settle: float
    idle_window: float
    idle_drops: int  # runnable files dropped beside the unrunnable ones afterwards, for their latency
    peer_workers: tuple[int, ...]
    peer_tasks: int
    true_loop: int


FULL = Sizes(((1, 600), (4, 2000), (16, 2000)), (16, 1000), 20, 10_000, 5.0, 30.0, 3, (4, 16), 2000, 1000)
QUICK = Sizes(((1, 100), (4, 300), (16, 300)), (16, 200), 5, 2000, 3.0, 5.0, 2, (4, 16), 300, 200)


# ---- helpers -----------------------------------------------------------------------------------------


def wait_for(what: str, check: Any, limit: float = WAIT_LIMIT, interval: float = 0.05) -> float:
    """Poll `check()` until it is true; the seconds waited. BenchError naming `what` after `limit`."""
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > limit:
            raise BenchError(f"gave up after {limit:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.perf_counter() - started


def count_yaml(folder: Path) -> int:
    """Files named *.yaml (not the dot-named temps of atomic writes) in a folder; 0 if it is missing."""
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if e.name.endswith(".yaml") and not e.name.startswith("."))
    except FileNotFoundError:
        return 0



def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def check_failed(spool: Path) -> None:
    """BenchError when a chunk used up its attempts: its completion record will never come."""
    with contextlib.suppress(FileNotFoundError), os.scandir(spool / "failed") as entries:
        for entry in entries:
            if entry.name.endswith(".yaml") and not entry.name.startswith("."):
                text = Path(entry.path).read_text(errors="replace")
                error = next((line for line in text.splitlines() if line.startswith("error:")), "error: unknown")
                raise BenchError(f"chunk {entry.name} failed for good: {error}")


def cpu_seconds(times: Any) -> float:
    return float(times.user + times.system)


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, SIGKILL after `timeout`, reap; then kill anything it started that is still there."""
    if process.poll() is not None:
        return
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=timeout)
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            if child.is_running():
                child.kill()


def environment(cache: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RENDERD_SPOOL", None)
    env["XDG_CACHE_HOME"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


class Daemons:
    """A set of renderd daemons on one spool; stops and reaps them all on exit."""

    def __init__(self, spool: Path, cache: Path, logs: Path):
        self.spool = spool
        self.cache = cache
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> Daemons:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, count: int, prefix: str = "n", extra: tuple[str, ...] = ()) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            name = f"{prefix}{index:02d}"
            with open(self.logs / f"{name}.log", "wb") as log:
                self.procs[name] = subprocess.Popen(
                    [*RENDERD, "--spool", str(self.spool), "--name", name, "-q", *extra],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=environment(self.cache),
                )

    def check_alive(self) -> None:
        for name, process in self.procs.items():
            if process.poll() is not None:
                raise BenchError(f"daemon {name} exited with {process.returncode}:\n{tail(self.logs / f'{name}.log')}")

    def registered(self) -> bool:
        self.check_alive()
        return all((self.spool / "nodes" / f"{name}.yaml").exists() for name in self.procs)

    def wait_registered(self) -> float:
        return wait_for(f"{len(self.procs)} daemon(s) to register in {self.spool / 'nodes'}", self.registered)

    def cpu(self) -> tuple[float, float]:
        """The daemons' own CPU seconds, and their reaped children's (the commands they ran)."""
        own = children = 0.0
        for name, process in self.procs.items():
            try:
                times = psutil.Process(process.pid).cpu_times()
            except psutil.Error as error:
                raise BenchError(f"daemon {name} is gone: {error}") from None
            own += times.user + times.system
            children += times.children_user + times.children_system
        return own, children

    def stop(self) -> None:
        for process in self.procs.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        for process in self.procs.values():
            stop_process(process)


def render_add(spool: Path, cache: Path, command: str, chunks: int) -> str:
    result = subprocess.run(
        [*RENDER, "--spool", str(spool), "add", "--cmd", command, "--frames", f"1-{chunks}", "--chunk", "1"],
        capture_output=True, text=True, env=environment(cache), timeout=WAIT_LIMIT, check=False,
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise BenchError(f"render add failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout.split()[0]


# ---- 1. throughput ------------------------------------------------------------------------------------


def true_cost(runs: int) -> dict[str, float]:
    """CPU of `true` itself per run, and of the Python that spawns it, from a plain subprocess.run loop."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for _ in range(runs):
        subprocess.run(["true"], check=False)
    wall = time.perf_counter() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    child_cpu = (children_after.ru_utime + children_after.ru_stime) - (children.ru_utime + children.ru_stime)
    own_cpu = (own_after.ru_utime + own_after.ru_stime) - (own.ru_utime + own.ru_stime)
    return {"runs": runs, "per_second": runs / wall, "child_ms": 1000 * child_cpu / runs,
            "parent_ms": 1000 * own_cpu / runs}


def run_chunks(work: Path, cache: Path, daemons: int, chunks: int, record_runs: bool = False) -> dict[str, Any]:
    """Start `daemons` idle daemons, queue `chunks` one-frame chunks, time until every completion record exists."""
    spool = work / f"spool-{daemons}d-{chunks}c{'-once' if record_runs else ''}"
    runs_file = spool / "runs.txt"
    command = "true"
    if record_runs:
        command = "sh -c " + shlex.quote(f'echo "$RENDERD_CHUNK" >> {shlex.quote(str(runs_file))}')
    with Daemons(spool, cache, work / f"logs-{spool.name}") as group:
        group.start(daemons)
        group.wait_registered()
        time.sleep(0.5)  # past the first scan of the (empty) queue
        own_before, children_before = group.cpu()
        started = time.perf_counter()
        job = render_add(spool, cache, command, chunks)
        added = time.perf_counter() - started
        done = spool / "done" / job
        done_at_add = count_yaml(done)

        def finished() -> bool:
            group.check_alive()
            check_failed(spool)
            return count_yaml(done) >= chunks

        wait_for(f"{chunks} completion records in {done}", finished, interval=0.02)
        wall = time.perf_counter() - started
        own_after, children_after = group.cpu()
    logs = len(list((spool / "logs" / job).glob(f"{job}-c*.log")))  # chunk attempts: the end step's is not one
    retried = 0
    for path in done.glob("*.yaml"):
        with contextlib.suppress(OSError):
            text = path.read_text()
            retried += next((int(line.split(":", 1)[1]) > 1 for line in text.splitlines()
                             if line.startswith("attempts:")), False)
    result: dict[str, Any] = {
        "daemons": daemons, "chunks": chunks, "command": command, "seconds": wall, "add_seconds": added,
        "chunks_per_second": chunks / wall, "done_when_add_returned": done_at_add,
        "chunks_per_second_after_add": (chunks - done_at_add) / (wall - added) if wall > added else None,
        "daemon_cpu_ms_per_chunk": 1000 * (own_after - own_before) / chunks,
        "children_cpu_ms_per_chunk": 1000 * (children_after - children_before) / chunks,
        "attempt_logs": logs, "retried_records": retried,
        "duplicates": max(0, logs - chunks) + retried,
        "left": {name: count_yaml(spool / name) for name in ("queue", "running", "failed")},
    }
    if record_runs:
        counts = collections.Counter(runs_file.read_text().split()) if runs_file.exists() else collections.Counter()
        expected = {f"{job}-c{index:0{max(4, len(str(chunks)))}d}" for index in range(1, chunks + 1)}
        result["runs_recorded"] = sum(counts.values())
        result["chunks_run_once"] = sum(1 for name in expected if counts.get(name) == 1)
        result["chunks_run_twice_or_more"] = sum(1 for name in expected if counts.get(name, 0) > 1)
        result["chunks_never_run"] = sum(1 for name in expected if name not in counts)
        result["unexpected_names"] = sum(1 for name in counts if name not in expected)
    return result


# ---- 2. latency -------------------------------------------------------------------------------------------


def drop_and_time(group: Daemons, label: str, limit: float = 60.0) -> float:
    """Drop one info file into the queue atomically; seconds from the rename to its command starting."""
    spool = group.spool
    starts = spool / "starts"
    starts.mkdir(exist_ok=True)
    out = starts / f"{label}.txt"
    info = {"command": ["sh", "-c", f"date +%s.%N > {shlex.quote(str(out))}"]}
    temp = spool / "queue" / f".{label}.yaml.part"
    temp.write_text(json.dumps(info) + "\n")  # JSON is YAML
    dropped = time.time()
    os.rename(temp, spool / "queue" / f"{label}.yaml")

    def started() -> bool:
        group.check_alive()
        check_failed(spool)
        return out.exists() and out.read_text().endswith("\n")  # the whole timestamp is written

    wait_for(f"the command of dropped info file {label}.yaml to start", started, limit=limit, interval=0.005)
    return float(out.read_text().strip()) - dropped


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"median": statistics.median(ordered), "p90": ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)],
            "max": ordered[-1], "min": ordered[0]}


def drop_latency(work: Path, cache: Path, drops: int, daemons: int = 4, seed: int = 1) -> dict[str, Any]:
    spool = work / "spool-latency"
    rng = random.Random(seed)
    latencies: list[float] = []
    with Daemons(spool, cache, work / "logs-latency") as group:
        group.start(daemons)
        group.wait_registered()
        time.sleep(1.0)  # let every daemon settle into its idle polling
        for index in range(drops):
            latencies.append(drop_and_time(group, f"lat-{index:03d}"))
            time.sleep(rng.uniform(0.0, 1.0))
        loose = spool / "done" / "_loose"
        wait_for("the last dropped chunks to finish", lambda: count_yaml(loose) >= drops, limit=60.0)
    return {"daemons": daemons, "drops": drops, "poll": 0.5, "latencies": latencies, **summary(latencies)}


# ---- 3. idle daemon beside unrunnable files -------------------------------------------------------------


def idle_cost(work: Path, cache: Path, files: int, settle: float, window: float, drops: int) -> dict[str, Any]:
    spool = work / "spool-idle"
    queue = spool / "queue"
    queue.mkdir(parents=True)
    template = (
        "job: idle-{index:05d}\nframes: '{index}'\npriority: 50\ncommand: 'true'\n"
        "requires: [nonexistent-capability]\nstatus: queued\nattempts: 0\nmax_attempts: 3\n"
    )
    for index in range(files):
        with open(queue / f"idle-{index:05d}.yaml", "w") as handle:
            handle.write(template.format(index=index))
    with Daemons(spool, cache, work / "logs-idle") as group:
        group.start(1)
        registered_after = group.wait_registered()
        time.sleep(settle)
        group.check_alive()
        process = psutil.Process(next(iter(group.procs.values())).pid)
        startup_cpu = cpu_seconds(process.cpu_times())
        before = cpu_seconds(process.cpu_times())
        started = time.perf_counter()
        peak_rss = 0
        while time.perf_counter() - started < window:
            time.sleep(min(1.0, max(0.0, window - (time.perf_counter() - started))))
            group.check_alive()
            peak_rss = max(peak_rss, process.memory_info().rss)
        wall = time.perf_counter() - started
        after = cpu_seconds(process.cpu_times())
        rss = process.memory_info().rss
        still_queued = count_yaml(queue)
        # beside that many files a new runnable one waits for the daemon's rate-limited rescan
        latencies = []
        for index in range(drops):
            latencies.append(drop_and_time(group, f"runnable-{index:02d}", limit=WAIT_LIMIT))
            time.sleep(1.0)
    return {
        "drops": drops, "latencies": latencies, "latency": summary(latencies) if latencies else None,
        "files": files, "settle_seconds": settle, "window_seconds": wall, "registered_after": registered_after,
        "cpu_seconds_until_window": startup_cpu, "cpu_percent": 100 * (after - before) / wall,
        "rss_bytes": rss, "peak_rss_bytes": max(peak_rss, rss), "still_queued": still_queued,
    }


# ---- 4. peers ----------------------------------------------------------------------------------------------


def _dirq_worker(path: str, poll: float, stop: Event, ready: Synchronized, done: Synchronized) -> None:
    from dirq.QueueSimple import QueueSimple

    queue = QueueSimple(path)
    with ready.get_lock():
        ready.value += 1
    while not stop.is_set():
        worked = False
        for name in queue:
            if queue.lock(name):
                subprocess.run(["true"], check=False)
                queue.remove(name)
                with done.get_lock():
                    done.value += 1
                worked = True
        if not worked:
            stop.wait(poll)


@contextlib.contextmanager
def worker_processes(count: int, target: Any, args: tuple[Any, ...], stop: Event) -> Iterator[None]:
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=target, args=args, daemon=True) for _ in range(count)]
    try:
        for proc in procs:
            proc.start()
        yield
    finally:
        stop.set()
        for proc in procs:
            proc.join(timeout=STOP_TIMEOUT)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=STOP_TIMEOUT)


def dirq_throughput(work: Path, workers: int, tasks: int, poll: float = 0.5) -> dict[str, Any]:
    from dirq.QueueSimple import QueueSimple

    path = work / f"dirq-{workers}"
    queue = QueueSimple(str(path))
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    ready = context.Value("i", 0)
    done = context.Value("i", 0)
    with worker_processes(workers, _dirq_worker, (str(path), poll, stop, ready, done), stop):
        wait_for(f"{workers} dirq workers to start", lambda: ready.value >= workers)
        time.sleep(poll + 0.1)  # every worker has found the queue empty once and is idle
        started = time.perf_counter()
        for index in range(tasks):
            queue.add(str(index))
        added = time.perf_counter() - started
        wait_for(f"{tasks} dirq elements to be done", lambda: done.value >= tasks, interval=0.02)
        wall = time.perf_counter() - started
    return {"workers": workers, "tasks": tasks, "seconds": wall, "add_seconds": added,
            "chunks_per_second": tasks / wall, "runs": done.value}


def huey_throughput(work: Path, workers: int, tasks: int) -> dict[str, Any]:
    app_dir = work / "huey-app"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "bench_huey_app.py").write_text(HUEY_APP)
    database = work / f"huey-{workers}.db"
    env = environment(work / "cache", BENCH_HUEY_DB=str(database))
    env["PYTHONPATH"] = os.pathsep.join([str(app_dir), env["PYTHONPATH"]])
    os.environ["BENCH_HUEY_DB"] = str(database)
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    sys.modules.pop("bench_huey_app", None)
    app = importlib.import_module("bench_huey_app")
    log_path = work / f"huey-{workers}.log"
    with open(log_path, "wb") as log:
        consumer = subprocess.Popen(
            [sys.executable, "-m", "huey.bin.huey_consumer", "bench_huey_app.huey", "-w", str(workers),
             "-k", "process", "-d", "0.1", "-m", "0.5", "-n", "-q"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(app_dir),
        )
    try:
        def workers_up() -> bool:
            if consumer.poll() is not None:
                raise BenchError(f"huey consumer exited with {consumer.returncode}:\n{tail(log_path)}")
            return len(psutil.Process(consumer.pid).children()) >= workers

        wait_for(f"{workers} huey workers to start", workers_up)
        time.sleep(1.5)  # every worker has polled the empty queue and backed off to the 0.5 s maximum
        started = time.perf_counter()
        for _ in range(tasks):
            app.run_true()
        added = time.perf_counter() - started

        def finished() -> bool:
            if consumer.poll() is not None:
                raise BenchError(f"huey consumer exited with {consumer.returncode}:\n{tail(log_path)}")
            return app.huey.result_count() >= tasks

        wait_for(f"{tasks} huey results", finished, interval=0.02)
        wall = time.perf_counter() - started
        results = app.huey.result_count()
    finally:
        stop_process(consumer)
    return {"workers": workers, "tasks": tasks, "seconds": wall, "add_seconds": added,
            "chunks_per_second": tasks / wall, "results": results}


# ---- report --------------------------------------------------------------------------------------------------


def table(figures: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []
    cost = figures["true_cost"]
    for case in figures["true_cases"]:
        label = f"true, {case['daemons']} daemon{'s' if case['daemons'] > 1 else ''}"
        rows.append((
            label,
            f"{case['chunks_per_second']:.0f} chunks/s ({case['chunks']} in {case['seconds']:.1f} s), "
            f"{case['daemon_cpu_ms_per_chunk']:.1f} ms daemon CPU/chunk, {case['duplicates']} duplicates",
        ))
    once = figures["once_case"]
    rows.append((
        f"each chunk once ({once['daemons']} daemons)",
        f"{once['chunks_run_once']}/{once['chunks']} ran exactly once, {once['chunks_run_twice_or_more']} twice+, "
        f"{once['chunks_never_run']} never ({once['chunks_per_second']:.0f} chunks/s)",
    ))
    lat = figures["latency"]
    rows.append((
        f"drop-to-start latency ({lat['daemons']} idle)",
        f"median {lat['median']:.2f} s, p90 {lat['p90']:.2f} s, max {lat['max']:.2f} s ({lat['drops']} drops)",
    ))
    idle = figures["idle"]
    rows.append((
        f"idle daemon, {idle['files']:,} unrunnable",
        f"{idle['cpu_percent']:.1f}% CPU, {idle['rss_bytes'] / 2**20:.0f} MB RSS "
        f"(goals: < 1%, < 60 MB; {idle['cpu_seconds_until_window']:.1f} s CPU for start and first scan)",
    ))
    if idle.get("latency"):
        late = idle["latency"]
        rows.append((
            f"drop-to-start beside {idle['files']:,}",
            f"min {late['min']:.2f} s, median {late['median']:.2f} s, max {late['max']:.2f} s "
            f"({idle['drops']} drops 1 s apart, 1 idle daemon)",
        ))
    renderd_rate = {case["daemons"]: case["chunks_per_second"] for case in figures["true_cases"]}
    for peer, label in (("dirq", "dirq"), ("huey", "huey sqlite")):
        for case in figures.get(peer, []):
            if "error" in case:
                rows.append((f"{label}, {case['workers']} workers", f"failed: {case['error']}"))
                continue
            rows.append((f"{label}, {case['workers']} workers",
                         f"{case['chunks_per_second']:.0f} chunks/s ({case['tasks']} in {case['seconds']:.1f} s)"))
    for peer in ("dirq", "huey"):
        for case in figures.get(peer, []):
            if "error" in case or case["workers"] not in renderd_rate:
                continue
            rows.append((f"ratio renderd/{peer} ({case['workers']})",
                         f"{renderd_rate[case['workers']] / case['chunks_per_second']:.2f}"))
    width = max(len(label) for label, _ in rows) + 2
    lines = [figures["title"], f"{'case':<{width}}figure"]
    lines += [f"{label:<{width}}{text}" for label, text in rows]
    lines.append("")
    lines.append(
        "daemon CPU/chunk is the daemons' own user+sys time (psutil) over the run divided by chunks; the commands' "
        "CPU is their children's and not in it."
    )
    children = ", ".join(f"{c['children_cpu_ms_per_chunk']:.1f}" for c in figures["true_cases"])
    lines.append(
        f"`true` alone from a plain Python subprocess.run loop: {cost['child_ms']:.2f} ms CPU in `true`, "
        f"{cost['parent_ms']:.2f} ms in the spawning Python, {cost['per_second']:.0f} runs/s; the daemons' children "
        f"took {children} ms/chunk."
    )
    adds = ", ".join(f"{c['add_seconds']:.1f}" for c in figures["true_cases"])
    after = ", ".join("-" if c["chunks_per_second_after_add"] is None else f"{c['chunks_per_second_after_add']:.0f}"
                      for c in figures["true_cases"])
    load_start, load_end = (" ".join(f"{x:.2f}" for x in figures[key]) for key in ("load_at_start", "load_at_end"))
    lines.append(f"load average (1, 5, 15 min) at start {load_start}, at end {load_end}; "
                 f"total {figures['total_seconds']:.0f} s.")
    lines.append(f"renderd timed from the start of `render add` (which took {adds} s) to the last completion record "
                 f"(chunks/s once add had returned: {after}); peers from the first enqueue to the last task done.")
    return "\n".join(lines)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller cases, about a minute")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also save every figure as JSON here")
    parser.add_argument("--skip-peers", action="store_true", help="do not measure dirq and huey")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so the finally blocks stop every daemon
    sizes = QUICK if args.quick else FULL
    began = time.perf_counter()
    figures: dict[str, Any] = {
        "title": f"renderd spool benchmark ({os.cpu_count()} cores, {platform.system()} {platform.release()}, "
                 f"Python {platform.python_version()}{', quick' if args.quick else ''})",
        "sizes": sizes.__dict__,
        "load_at_start": list(os.getloadavg()),
    }

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - began:6.1f} s] {text}", file=sys.stderr, flush=True)

    try:
        with tempfile.TemporaryDirectory(prefix="bench-spool-") as temp:
            work = Path(temp)
            cache = work / "cache"
            say("warm-up: one daemon start probes the renderers into the shared cache")
            with Daemons(work / "spool-warmup", cache, work / "logs-warmup") as warm:
                warm.start(1, extra=("--exit-when-idle",))
                process = next(iter(warm.procs.values()))
                try:
                    process.wait(timeout=WAIT_LIMIT)
                except subprocess.TimeoutExpired:
                    raise BenchError("the warm-up daemon did not exit when idle") from None
            say(f"timing {sizes.true_loop} runs of `true` from plain Python")
            figures["true_cost"] = true_cost(sizes.true_loop)
            figures["true_cases"] = []
            for daemons, chunks in sizes.true_cases:
                say(f"true: {chunks} chunks, {daemons} daemon(s)")
                figures["true_cases"].append(run_chunks(work, cache, daemons, chunks))
            daemons, chunks = sizes.once_case
            say(f"each chunk once: {chunks} chunks appending their name, {daemons} daemons")
            figures["once_case"] = run_chunks(work, cache, daemons, chunks, record_runs=True)
            say(f"latency: {sizes.drops} drops into the queue of 4 idle daemons")
            figures["latency"] = drop_latency(work, cache, sizes.drops)
            say(f"idle: one daemon beside {sizes.idle_files} unrunnable files, {sizes.idle_window:.0f} s window")
            figures["idle"] = idle_cost(work, cache, sizes.idle_files, sizes.idle_settle, sizes.idle_window,
                                       sizes.idle_drops)
            if not args.skip_peers:
                for peer, measure in (("dirq", dirq_throughput), ("huey", huey_throughput)):
                    figures[peer] = []
                    for workers in sizes.peer_workers:
                        say(f"{peer}: {sizes.peer_tasks} tasks, {workers} workers")
                        try:
                            figures[peer].append(measure(work, workers, sizes.peer_tasks))
                        except ImportError as error:
                            figures[peer].append({"workers": workers, "error": f"not installed ({error.name})"})
    except BenchError as error:
        print(f"bench_spool: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench_spool: interrupted; every daemon it started has been stopped", file=sys.stderr)
        return 130
    figures["total_seconds"] = time.perf_counter() - began
    figures["load_at_end"] = list(os.getloadavg())
    print(table(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
