"""Sharing a workstation: suspending a render while the machine is busy, memory limits, work hours."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psutil
import pytest
import yaml

from renderd.daemon import Daemon, DaemonConfig
from renderd.hours import WorkHours
from renderd.infofiles.spool import Spool
from tests.conftest import Daemons, render, wait_for


def slow_render(tmp_path: Path, frames: int = 30) -> tuple[str, Path]:
    """A render of `frames` frames, 0.1 s each, that appends `PID FRAME` as it finishes each one."""
    done = tmp_path / "frames.txt"
    script = tmp_path / "render.py"
    script.write_text(
        "import os, sys, time\n"
        f"for frame in range(1, {frames} + 1):\n"
        "    time.sleep(0.1)\n"
        f"    with open({str(done)!r}, 'a') as out:\n"
        "        out.write(f'{os.getpid()} {frame}\\n')\n"
    )
    return f"{sys.executable} {script}", done


def finished_frames(done: Path) -> list[tuple[int, int]]:
    if not done.exists():
        return []
    return [(int(pid), int(frame)) for pid, frame in (line.split() for line in done.read_text().splitlines())]


def node(spool: Spool, name: str) -> dict:
    """`render nodes --json` for one node ({} until it has registered)."""
    return {n["name"]: n for n in json.loads(render(spool, "nodes", "--json").stdout)}.get(name, {})


def render_process(spool: Spool, name: str) -> psutil.Process:
    """The render a node runs, by the pid in its node file (written within a second of the start)."""
    path = spool.nodes / f"{name}.yaml"
    wait_for(lambda: yaml.safe_load(path.read_text()).get("render_pid"), 10, "the render's pid in the node file")
    return psutil.Process(yaml.safe_load(path.read_text())["render_pid"])


def stopped(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_STOPPED
    except psutil.NoSuchProcess:  # it finished
        return False


def assert_rendered_once(done: Path, frames: int) -> None:
    """Every frame finished once, in order, by one process: the render was never restarted."""
    seen = finished_frames(done)
    assert [frame for _pid, frame in seen] == list(range(1, frames + 1))
    assert len({pid for pid, _frame in seen}) == 1


@pytest.fixture
def cpu_hog() -> Iterator[list[subprocess.Popen]]:
    hogs: list[subprocess.Popen] = []
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def test_a_busy_workstation_suspends_the_render_and_a_quiet_one_resumes_it(
    spool: Spool, daemons: Daemons, tmp_path: Path, cpu_hog: list[subprocess.Popen]
) -> None:
    command, done = slow_render(tmp_path)
    job = render(spool, "add", "--cmd", command).stdout.strip()
    # a high share, and every core busy to pass it: other load on a shared test machine (up to 60% of
    # the CPUs, the resume threshold) neither fakes the busy workstation nor keeps it from going quiet
    daemons.start("a", "--cpu-share", "0.75", "--quiet-for", "1.5")
    wait_for(lambda: len(finished_frames(done)) >= 3, 30, "the render to get going")
    process = render_process(spool, "a")
    # someone starts working: processes at normal priority keeping every core busy
    for _core in range(psutil.cpu_count() or 1):
        cpu_hog.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
    wait_for(lambda: stopped(process), 15, "the render to be suspended (SIGSTOP)")
    state = node(spool, "a")
    assert state["state"] == "suspended" and "stepped aside: workstation in use" in (state["note"] or "")
    count = len(finished_frames(done))
    time.sleep(1.0)
    assert len(finished_frames(done)) == count, "a suspended render makes no progress"
    assert count < 30
    while cpu_hog:
        hog = cpu_hog.pop()
        hog.kill()
        hog.wait()
    wait_for(lambda: not stopped(process), 20, "the render to be resumed (SIGCONT) once the machine is quiet")
    wait_for(lambda: (spool.done / job / f"{job}-c0001.yaml").exists(), 30, "the chunk to finish")
    assert_rendered_once(done, 30)
    assert yaml.safe_load((spool.done / job / f"{job}-c0001.yaml").read_text())["attempts"] == 1


def test_a_node_short_of_memory_takes_nothing_and_big_chunks_wait_for_a_node_with_room(
    spool: Spool, daemons: Daemons, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    small = render(spool, "add", "--cmd", f"touch {ran}", "--name", "small").stdout.strip()
    daemons.start("tight", "--min-memory", "1000T")  # more than any machine has: always short
    wait_for(lambda: node(spool, "tight").get("state") == "standby", 20, "the node to stand by")
    assert "memory short" in node(spool, "tight")["note"]
    time.sleep(1.0)
    assert not ran.exists() and (spool.queue / f"{small}-c0001.yaml").exists()
    huge = render(spool, "add", "--cmd", "true", "--memory", "1000T", "--name", "huge").stdout.strip()
    daemons.start("roomy")
    wait_for(lambda: ran.exists(), 30, "the node with room to take the small job")
    time.sleep(1.0)
    summary = {job["id"]: job for job in json.loads(render(spool, "jobs", "--json").stdout)["jobs"]}
    assert summary[huge]["waiting"] == "needs 1000T of free memory; no live node has that much"
    assert (spool.queue / f"{huge}-c0001.yaml").exists()


def test_work_hours_from_the_settings_put_a_node_to_sleep_and_suspend_or_finish_its_chunk(
    spool: Spool, daemons: Daemons, tmp_path: Path
) -> None:
    settings = spool.root / "settings.yaml"
    settings.write_text("nodes:\n  a: {hours: never}\n")
    command, done = slow_render(tmp_path, frames=20)
    job = render(spool, "add", "--cmd", command, "--frames", "1-2", "--chunk", "1").stdout.strip()
    daemons.start("a")
    wait_for(lambda: node(spool, "a").get("state") == "asleep", 20, "the node to sleep outside its hours")
    assert "asleep (work hours never)" in node(spool, "a")["note"]
    time.sleep(1.0)
    assert not done.exists(), "no work outside the hours"
    settings.write_text("nodes:\n  a: {hours: always}\n")  # the hours begin
    wait_for(lambda: len(finished_frames(done)) >= 3, 30, "the first chunk to start")
    process = render_process(spool, "a")
    settings.write_text("nodes:\n  a: {hours: never, hours_end: suspend}\n")  # ... and end mid-chunk
    wait_for(lambda: stopped(process), 15, "the chunk to be suspended when the hours end")
    assert node(spool, "a")["state"] == "suspended"
    settings.write_text("nodes:\n  a: {hours: always}\n")
    wait_for(lambda: (spool.done / job / f"{job}-c0001.yaml").exists(), 30, "the first chunk to finish")
    assert_rendered_once(done, 20)
    # hours that end with `finish` (the default): the chunk in hand completes, nothing new starts
    wait_for(lambda: len(finished_frames(done)) >= 23, 30, "the second chunk to start")
    settings.write_text("nodes:\n  a: {hours: never}\n")
    wait_for(lambda: (spool.done / job / f"{job}-c0002.yaml").exists(), 30, "the second chunk to finish")
    assert len({pid for pid, _frame in finished_frames(done)[20:]}) == 1
    wait_for(lambda: node(spool, "a")["state"] == "asleep", 20, "the node to go to sleep")
    time.sleep(1.0)
    assert (spool.queue / f"{job}-end.yaml").exists(), "the end step waits for the next working hours"


def test_work_hours_follow_the_clock_they_are_given(spool: Spool, tmp_path: Path) -> None:
    """The daemon's loop on this thread, with an injected clock: asleep at noon, working at 20:00."""
    ran = tmp_path / "ran"
    job = render(spool, "add", "--cmd", f"touch {ran}").stdout.strip()
    now = [datetime(2026, 11, 23, 12, 0)]  # a Monday
    config = DaemonConfig(spool=spool.root, name="clocked", host=socket.gethostname(), poll=0.05,
                          hours=WorkHours.parse("19:00-08:00"))
    daemon = Daemon(config, spool, clock=lambda: now[0])
    daemon._start()
    try:
        daemon._step()
        assert daemon.state == "asleep" and not ran.exists()
        record = yaml.safe_load((spool.nodes / "clocked.yaml").read_text())
        assert record["note"] == "asleep until Mon 19:00 (work hours 19:00-08:00)"
        now[0] = datetime(2026, 11, 23, 20, 0)
        daemon.next_sample = 0.0  # the next look at the hours is due
        assert daemon._step() == "ran"
        assert ran.exists() and (spool.done / job / f"{job}-c0001.yaml").exists()
        now[0] = datetime(2026, 11, 24, 8, 30)  # Tuesday morning: the night's hours are over
        daemon.next_sample = 0.0
        daemon._step()
        assert daemon.state == "asleep" and (spool.queue / f"{job}-end.yaml").exists()
    finally:
        daemon._shutdown()
        daemon.selector.close()


def test_a_render_suspended_for_memory_too_long_is_handed_back(spool: Spool, tmp_path: Path) -> None:
    """The daemon's loop on this thread; memory is always short (a threshold no machine meets)."""
    command, done = slow_render(tmp_path, frames=50)
    job = render(spool, "add", "--cmd", command).stdout.strip()
    config = DaemonConfig(spool=spool.root, name="tight", host=socket.gethostname(), poll=0.05,
                          min_available=1000 << 40, memory_give_up=1.0)
    daemon = Daemon(config, spool)
    daemon._start()
    try:
        assert daemon.state == "standby" and not daemon._taking_work()
        held = daemon._next_chunk()  # as if taken just before memory ran short
        assert held is not None
        daemon._run_chunk(held)  # suspended at once, then handed back after a second
    finally:
        daemon._shutdown()
        daemon.selector.close()
    info = yaml.safe_load((spool.queue / f"{job}-c0001.yaml").read_text())
    assert info["status"] == "queued" and info["attempts"] == 0, "back in the queue without counting an attempt"
    assert len(finished_frames(done)) < 50
    log = next((spool.logs / job).glob(f"{job}-c0001.*.log")).read_text()
    assert "memory stayed short for 1 s: handed back" in log
