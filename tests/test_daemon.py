"""Real renderd processes on a real spool: exactly once, through crashes, signals and hand edits."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import yaml

from renderd.infofiles.spool import Spool, write_atomic
from tests.conftest import Daemons, chunk_files, render, wait_for


def job_id_of(result) -> str:  # noqa: ANN001 - a CompletedProcess
    return result.stdout.strip()


def jobs_json(spool: Spool) -> dict:
    return json.loads(render(spool, "jobs", "--json").stdout)


def only_file(folder: Path) -> Path:
    """The one chunk file in a folder (a job's end step, which waits for its chunks, is not one)."""
    files = chunk_files(folder)
    assert len(files) == 1, f"expected one file in {folder}, found {files}"
    return files[0]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_eight_daemons_run_a_thousand_chunks_exactly_once(spool: Spool, daemons: Daemons, tmp_path: Path) -> None:
    runs = tmp_path / "runs.txt"
    job = job_id_of(render(spool, "add", "--cmd", f"sh -c 'echo {{frames}} >> {runs}'", "--frames", "1-1000",
                           "--chunk", "1"))
    names = [f"n{i}" for i in range(8)]
    for name in names:
        daemons.start(name, "--exit-when-idle", poll=0.2)
    for name in names:
        assert daemons.wait_exit(name, timeout=600) == 0, daemons.log(name)[-2000:]
    frames = [int(line) for line in runs.read_text().split()]
    assert len(frames) == 1000, "every chunk's command must run exactly once"
    assert sorted(frames) == list(range(1, 1001))
    assert not list(spool.queue.glob("*.yaml")) and not list(spool.running.glob("*.yaml"))
    summary = jobs_json(spool)["jobs"][0]
    assert (summary["id"], summary["status"], summary["done"], summary["total"]) == (job, "done", 1000, 1000)
    ran_on = {yaml.safe_load(p.read_text())["node"] for p in (spool.done / job).glob("*.yaml")}
    assert len(ran_on) > 1, "the work should be shared between daemons"


def test_sigkilled_daemon_chunk_returns_after_the_lease_and_the_orphan_is_killed(
    spool: Spool, daemons: Daemons, tmp_path: Path
) -> None:
    starts = tmp_path / "starts.txt"
    # On node "a" the render hangs; elsewhere it finishes at once.
    command = f"sh -c 'echo $RENDERD_NODE $$ >> {starts}; if [ $RENDERD_NODE = a ]; then sleep 600; fi'"
    job = job_id_of(render(spool, "add", "--cmd", command, "--frames", "1"))
    daemon_a = daemons.start("a", "--host", "host-a", lease=3)
    wait_for(lambda: starts.exists() and starts.read_text().strip(), 30, "the render to start on a")
    orphan_pid = int(starts.read_text().split()[1])
    time.sleep(1.2)  # let a heartbeat record the render
    daemon_a.send_signal(signal.SIGKILL)
    daemon_a.wait()
    killed_at = time.monotonic()
    assert not gone(orphan_pid), "the render outlives its SIGKILLed daemon"

    daemons.start("b", "--host", "host-b", "--exit-when-idle", lease=3)
    assert daemons.wait_exit("b", timeout=60) == 0
    assert time.monotonic() - killed_at >= 2.0, "another host must wait for the lease"
    lines = starts.read_text().split("\n")
    assert [line.split()[0] for line in lines if line] == ["a", "b"]
    record = yaml.safe_load(only_file(spool.done / job).read_text())
    assert record["node"] == "b"
    assert "b" in daemons.log("b") and "no heartbeat" in daemons.log("b")

    # host-b cannot touch host-a's processes; a daemon starting again on host-a kills the orphan.
    assert not gone(orphan_pid)
    daemons.start("a2", "--host", "host-a", "--exit-when-idle")
    assert daemons.wait_exit("a2", timeout=60) == 0
    wait_for(lambda: gone(orphan_pid), 15, "the orphaned render to be killed")
    assert "orphaned render" in daemons.log("a2")


def test_on_the_same_host_a_dead_pid_releases_the_chunk_at_once(spool: Spool, daemons: Daemons,
                                                                  tmp_path: Path) -> None:
    starts = tmp_path / "starts.txt"
    command = f"sh -c 'echo $RENDERD_NODE $$ >> {starts}; if [ $RENDERD_NODE = a ]; then sleep 600; fi'"
    job = job_id_of(render(spool, "add", "--cmd", command))
    daemon_a = daemons.start("a")
    wait_for(lambda: starts.exists() and starts.read_text().strip(), 30, "the render to start on a")
    orphan_pid = int(starts.read_text().split()[1])
    daemons.start("b")  # default lease of 60 s: only the dead pid can explain a quick takeover
    daemons.wait_registered("b")
    daemon_a.send_signal(signal.SIGKILL)
    daemon_a.wait()
    wait_for(lambda: (spool.done / job).is_dir() and any((spool.done / job).glob("*.yaml")), 20,
             "node b to take over and finish the chunk")
    wait_for(lambda: gone(orphan_pid), 15, "the orphaned render to be killed")
    history = yaml.safe_load(only_file(spool.done / job).read_text())
    assert history["node"] == "b"
    assert "died" in daemons.log("b")


def test_hand_edit_of_priority_changes_the_order_and_a_dropped_file_runs(spool: Spool, daemons: Daemons,
                                                                          tmp_path: Path) -> None:
    order = tmp_path / "order.txt"
    job = job_id_of(render(spool, "add", "--cmd", f"sh -c 'echo {{frame}} >> {order}; sleep 0.4'", "--frames", "1-6",
                           "--chunk", "1"))
    daemons.start("a", "--exit-when-idle")
    wait_for(lambda: order.exists() and order.read_text().strip(), 30, "the first chunk to start")
    fifth = spool.queue / f"{job}-c0005.yaml"
    fifth.write_text(fifth.read_text().replace("priority: 50", "priority: 90"))  # in place, as an editor may
    (spool.queue / "by-hand.yaml").write_text(f"command: sh -c 'echo hand >> {order}'\n")
    assert daemons.wait_exit("a", timeout=60) == 0
    assert order.read_text().split() == ["1", "5", "2", "3", "4", "6", "hand"]
    assert (spool.done / "_loose" / "by-hand.yaml").exists()


def test_malformed_files_are_kept_untouched_reported_once_and_do_not_stop_good_work(
    spool: Spool, daemons: Daemons, tmp_path: Path
) -> None:
    bad = {
        "bad-yaml.yaml": b"command: [unclosed\n",
        "wrong-types.yaml": b"command: echo hi\npriority: high\n",
        "no-command.yaml": b"priority: 5\nframes: 1-10\n",
        "bad-quotes.yaml": b"command: echo 'unbalanced\n",
        "binary.yaml": bytes(range(256)),
        "empty.yaml": b"",
    }
    for name, data in bad.items():
        (spool.queue / name).write_bytes(data)
    (spool.queue / "folder.yaml").mkdir()
    (spool.queue / "dangling.yaml").symlink_to(tmp_path / "nowhere.yaml")
    done = tmp_path / "done.txt"
    render(spool, "add", "--cmd", f"sh -c 'echo {{start}} >> {done}'", "--frames", "1-3", "--chunk", "1")
    (spool.queue / "good-by-hand.yaml").write_text(f"command: sh -c 'echo hand >> {done}'\n")

    daemons.start("a", "--exit-when-idle")
    assert daemons.wait_exit("a", timeout=60) == 0
    assert sorted(done.read_text().split()) == ["1", "2", "3", "hand"]
    for name, data in bad.items():
        assert (spool.queue / name).read_bytes() == data, f"{name} must be left untouched"
    assert (spool.queue / "folder.yaml").is_dir() and (spool.queue / "dangling.yaml").is_symlink()
    log = daemons.log("a")
    for name in [*bad, "folder.yaml", "dangling.yaml"]:
        assert log.count(name) == 1, f"{name} should be reported exactly once:\n{log}"

    listing = render(spool, "jobs").stdout
    invalid = jobs_json(spool)["invalid"]
    assert len(invalid) == 8
    reasons = {Path(item["path"]).name: item["reason"] for item in invalid}
    assert "bad YAML" in reasons["bad-yaml.yaml"]
    assert "priority" in reasons["wrong-types.yaml"] and ":2:" in reasons["wrong-types.yaml"]
    assert "command" in reasons["no-command.yaml"] and "cannot split" in reasons["bad-quotes.yaml"]
    assert "binary" in reasons["binary.yaml"] and "empty" in reasons["empty.yaml"]
    assert "folder" in reasons["folder.yaml"] and "dangling symlink" in reasons["dangling.yaml"]
    for name in reasons:
        assert name in listing


def test_sigterm_requeues_the_running_chunk_and_deregisters(spool: Spool, daemons: Daemons, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    job = job_id_of(render(spool, "add", "--cmd", f"sh -c 'echo $$ > {pidfile}; sleep 600'"))
    daemon = daemons.start("a")
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, "the render to start")
    render_pid = int(pidfile.read_text())
    daemon.send_signal(signal.SIGTERM)
    assert daemons.wait_exit("a", timeout=30) == 0
    assert gone(render_pid)
    info = yaml.safe_load(only_file(spool.queue).read_text())
    assert (info["job"], info["status"], info["attempts"]) == (job, "queued", 0)
    assert "node" not in info and "heartbeat" not in info
    node = yaml.safe_load((spool.nodes / "a.yaml").read_text())
    assert node["state"] == "offline" and node.get("stopped_at")
    assert json.loads(render(spool, "nodes", "--json").stdout)[0]["state"] == "offline"


def test_a_second_signal_kills_at_once(spool: Spool, daemons: Daemons, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    # a render that ignores SIGTERM: the first signal alone would wait out the 60 s grace
    render(spool, "add", "--cmd", f"sh -c 'trap \"\" TERM; echo $$ > {pidfile}; sleep 600'")
    daemon = daemons.start("a", "--grace", "60")
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, "the render to start")
    render_pid = int(pidfile.read_text())
    daemon.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert daemon.poll() is None, "the first signal waits for the render to stop"
    second = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    assert daemons.wait_exit("a", timeout=30) == 0
    assert time.monotonic() - second < 5
    assert gone(render_pid)
    assert yaml.safe_load(only_file(spool.queue).read_text())["status"] == "queued"


def test_max_attempts_ends_in_failed_with_the_reason_shown(spool: Spool, daemons: Daemons) -> None:
    job = job_id_of(render(spool, "add", "--cmd", "sh -c 'echo boom; exit 3'", "--max-attempts", "2"))
    daemons.start("a", "--exit-when-idle")
    assert daemons.wait_exit("a", timeout=60) == 0
    info = yaml.safe_load(only_file(spool.failed).read_text())
    assert (info["status"], info["attempts"]) == ("failed", 2)
    assert [attempt["error"] for attempt in info["history"]] == ["exit status 3", "exit status 3"]
    assert "exit status 3" in info["error"] and info["history"][0]["node"] == "a"
    assert "boom" in (spool.root / info["log"]).read_text()
    summary = jobs_json(spool)["jobs"][0]
    assert (summary["id"], summary["status"], summary["failed"]) == (job, "failed", 1)
    assert "exit status 3" in render(spool, "jobs").stdout


def test_a_node_that_failed_a_chunk_leaves_it_to_another(spool: Spool, daemons: Daemons) -> None:
    daemons.start("b", poll=3.0)  # registered, but slow to look: "a" gets the chunk first
    daemons.wait_registered("b")
    time.sleep(0.5)
    job = job_id_of(render(spool, "add", "--cmd", "sh -c 'test $RENDERD_NODE != a'"))
    daemons.start("a")
    wait_for(lambda: (spool.done / job).is_dir() and any((spool.done / job).glob("*.yaml")), 30, "the chunk to finish")
    record = yaml.safe_load(only_file(spool.done / job).read_text())
    assert record["node"] == "b" and record["attempts"] == 2
    assert daemons.log("a").count(f"running {job}-c0001") == 1, "a must not retry what b could run"


def test_timeout_kills_the_render_tree_and_counts_as_a_failure(spool: Spool, daemons: Daemons,
                                                               tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    render(spool, "add", "--cmd", f"sh -c 'sleep 600 & echo $! > {pidfile}; wait'", "--timeout", "1",
           "--max-attempts", "1")
    started = time.monotonic()
    daemons.start("a", "--exit-when-idle", "--grace", "2")
    assert daemons.wait_exit("a", timeout=60) == 0
    assert time.monotonic() - started < 30
    info = yaml.safe_load(only_file(spool.failed).read_text())
    assert "timed out after 1 s" in info["error"]
    assert gone(int(pidfile.read_text()))


def test_deleting_a_running_info_file_cancels_the_render(spool: Spool, daemons: Daemons, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    job = job_id_of(render(spool, "add", "--cmd", f"sh -c 'echo $$ > {pidfile}; sleep 600'"))
    daemon = daemons.start("a")
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, "the render to start")
    render_pid = int(pidfile.read_text())
    only_file(spool.running).unlink()
    wait_for(lambda: gone(render_pid), 15, "the cancelled render to be stopped")
    time.sleep(0.5)
    assert daemon.poll() is None, "the daemon carries on"
    assert not (spool.done / job).exists()
    assert [p.name for p in spool.queue.glob("*.yaml")] == [f"{job}-end.yaml"], "only the end step, still waiting"
    assert not list(spool.failed.glob("*.yaml"))


def test_requirements_route_work_to_nodes_that_have_them(spool: Spool, daemons: Daemons, tmp_path: Path) -> None:
    out = tmp_path / "who.txt"
    render(spool, "add", "--cmd", f"sh -c 'echo $RENDERD_NODE >> {out}'", "--requires", "unobtainium")
    daemons.start("plain")
    daemons.wait_registered("plain")
    wait_for(lambda: "no live node has unobtainium" in render(spool, "jobs").stdout, 20, "the waiting reason")
    assert not out.exists()
    daemons.start("special", "--tags", "unobtainium,gpu")
    wait_for(lambda: out.exists(), 30, "the tagged node to run it")
    assert out.read_text().split() == ["special"]
    caps = yaml.safe_load((spool.nodes / "special.yaml").read_text())["capabilities"]
    assert "unobtainium" in caps and "gpu" in caps


def test_a_hand_edit_of_a_running_file_is_kept(spool: Spool, daemons: Daemons, tmp_path: Path) -> None:
    go = tmp_path / "go"
    render(spool, "add", "--cmd", f"sh -c 'while [ ! -e {go} ]; do sleep 0.1; done'")
    daemons.start("a", heartbeat=0.3)
    wait_for(lambda: list(spool.running.glob("*.yaml")), 30, "the chunk to be claimed")
    path = only_file(spool.running)
    wait_for(lambda: "render_pid" in path.read_text(), 10, "a first heartbeat")
    edited = yaml.safe_load(path.read_text())
    edited["priority"] = 77
    edited["note"] = "keep me"
    write_atomic(path, yaml.safe_dump(edited, sort_keys=False))  # as an editor that saves by renaming would
    first_beat = edited["heartbeat"]
    wait_for(lambda: yaml.safe_load(path.read_text())["heartbeat"] != first_beat, 10, "a later heartbeat")
    after = yaml.safe_load(path.read_text())
    assert (after["priority"], after["note"]) == (77, "keep me")
    go.touch()
    wait_for(lambda: not path.exists(), 20, "the chunk to finish")


def test_frame_placeholder_runs_the_command_once_per_frame(spool: Spool, daemons: Daemons, tmp_path: Path) -> None:
    out = tmp_path / "frames.txt"
    render(spool, "add", "--cmd", f"sh -c 'echo {{frame}} >> {out}'", "--frames", "1-9:2", "--chunk", "10")
    assert len(chunk_files(spool.queue)) == 1
    daemons.start("a", "--exit-when-idle")
    assert daemons.wait_exit("a", timeout=60) == 0
    assert out.read_text().split() == ["1", "3", "5", "7", "9"]



def test_a_job_name_with_dash_c_in_it_runs_its_chunks_and_then_its_end_step(spool: Spool, daemons: Daemons,
                                                                            tmp_path: Path) -> None:
    out = tmp_path / "log.txt"
    job = render(spool, "add", "--cmd", f"sh -c 'echo {{frame}} >> {out}'", "--name", "shot-c2", "--frames", "1-4",
                 "--chunk", "2", "--hook", f"end=sh -c 'echo end >> {out}'").stdout.strip()
    assert job.startswith("shot-c2-")
    assert [p.name for p in chunk_files(spool.queue)] == [f"{job}-c0001.yaml", f"{job}-c0002.yaml"]
    daemons.start("a", "--exit-when-idle")
    assert daemons.wait_exit("a", timeout=60) == 0
    assert out.read_text().split() == ["1", "2", "3", "4", "end"]
    assert not list(spool.queue.glob("*.yaml")) and not list(spool.failed.glob("*.yaml"))

def test_nodes_register_with_system_figures_and_show_as_offline_when_gone(spool: Spool, daemons: Daemons) -> None:
    daemons.start("a")
    proc_b = daemons.start("b")
    daemons.wait_registered("a", "b")
    nodes = {n["name"]: n for n in json.loads(render(spool, "nodes", "--json").stdout)}
    assert nodes["a"]["state"] == "idle" and nodes["b"]["state"] == "idle"
    assert nodes["a"]["memory"]["total"] > 0 and "python" in nodes["a"]["capabilities"]
    record = yaml.safe_load((spool.nodes / "a.yaml").read_text())
    assert record["pid"] == daemons.procs["a"].pid and record["cpu_count"] >= 1
    proc_b.send_signal(signal.SIGKILL)
    proc_b.wait()
    nodes = {n["name"]: n for n in json.loads(render(spool, "nodes", "--json").stdout)}
    assert nodes["b"]["state"] == "offline" and nodes["a"]["state"] == "idle"
    assert "offline" in render(spool, "nodes").stdout


def test_renders_run_at_low_priority_in_their_own_process_group(spool: Spool, daemons: Daemons,
                                                                  tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    render(spool, "add", "--cmd", f"sh -c 'echo $$ > {pidfile}; sleep 600'")
    daemons.start("a")
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, "the render to start")
    pid = int(pidfile.read_text())
    # the daemon lowers the priority right after starting the process: the render may get a first
    # millisecond at normal priority (and write its pid file in it), never more
    wait_for(lambda: psutil.Process(pid).nice() == 19, 5, "the render at nice 19")
    assert os.getpgid(pid) == pid != os.getpgid(daemons.procs["a"].pid)
    log = only_file(spool.running).read_text()
    assert "renderd" not in log  # the info file is YAML, the output goes to the log
    wait_for(lambda: "render_pid" in only_file(spool.running).read_text(), 10, "the heartbeat")
    info = yaml.safe_load(only_file(spool.running).read_text())
    assert info["render_pid"] == pid and (spool.root / info["log"]).exists()
