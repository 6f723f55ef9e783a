"""The status and control socket of real daemons on ports the OS chose, and the `render` commands that use it."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
import yaml

from renderd.infofiles.spool import Spool
from tests.conftest import Daemons, chunk_files, render, wait_for

LONG = "sh -c 'echo started $$; i=0; while [ $i -lt 600 ]; do echo tick $i; i=$((i+1)); sleep 0.2; done'"


def start_render(spool: Spool, daemons: Daemons, name: str = "a") -> tuple[str, str, int]:
    """A daemon running a long chunk: (job id, node address, render pid)."""
    job = render(spool, "add", "--cmd", LONG).stdout.strip()
    daemons.start(name)
    wait_for(lambda: (spool.nodes / f"{name}.yaml").exists()
             and yaml.safe_load((spool.nodes / f"{name}.yaml").read_text()).get("render_pid"), 30, "the render")
    record = yaml.safe_load((spool.nodes / f"{name}.yaml").read_text())
    return job, record["address"], record["render_pid"]


def get(address: str, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(address + path, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def post(address: str, path: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(address + path, data=b"", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def status_of(pid: int) -> str:
    try:
        return psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return "gone"


def test_status_json_page_and_log_of_a_running_render(spool: Spool, daemons: Daemons) -> None:
    job, address, pid = start_render(spool, daemons)
    code, body = get(address, "/status")
    status = json.loads(body)
    assert code == 200 and status["name"] == "a" and status["state"] == "busy"
    assert status["job"] == job and status["render"]["pid"] == pid and status["render"]["rss"] > 0
    assert status["memory"]["total"] > 0 and "python" in status["capabilities"]
    code, page = get(address, "/")
    assert code == 200 and "renderd node a" in page and "http-equiv='refresh'" in page and job in page
    wait_for(lambda: "tick" in get(address, "/log")[1], 10, "output in the log tail")
    assert "started" in get(address, "/log")[1]


def test_control_needs_the_token_and_obeys_it(spool: Spool, daemons: Daemons) -> None:
    _job, address, pid = start_render(spool, daemons)
    for command in ("pause", "kill", "quit"):
        assert post(address, f"/{command}") == 401
        assert post(address, f"/{command}", token="wrong") == 401
    time.sleep(0.5)
    assert status_of(pid) != psutil.STATUS_STOPPED and daemons.procs["a"].poll() is None
    token = (spool.root / "token").read_text().strip()
    assert post(address, "/pause", token) == 202
    wait_for(lambda: status_of(pid) == psutil.STATUS_STOPPED, 5, "the render to be suspended")
    wait_for(lambda: json.loads(get(address, "/status")[1])["state"] == "paused", 5, "the paused state")
    result = render(spool, "node", "resume", "a")
    assert "resume" in result.stdout
    wait_for(lambda: status_of(pid) not in (psutil.STATUS_STOPPED, "gone"), 5, "the render to run again")
    # paused again so that the node does not take the chunk straight back, then killed: it waits in the queue
    assert post(address, "/pause", token) == 202 and post(address, "/kill", token) == 202
    wait_for(lambda: status_of(pid) in ("gone", psutil.STATUS_ZOMBIE), 5, "the render to be killed")
    wait_for(lambda: chunk_files(spool.queue), 10, "the chunk back in the queue")
    info = yaml.safe_load(chunk_files(spool.queue)[0].read_text())
    assert info["attempts"] == 0  # killed on purpose: not the chunk's fault


def test_cancel_stops_a_long_render_within_two_seconds(spool: Spool, daemons: Daemons) -> None:
    job, _address, pid = start_render(spool, daemons)
    started = time.monotonic()
    result = render(spool, "cancel", job)
    assert "cancelled" in result.stdout
    wait_for(lambda: status_of(pid) in ("gone", psutil.STATUS_ZOMBIE), 5, "the render to stop")
    assert time.monotonic() - started < 2.0 + 1.0  # the command itself starts Python; the stop is well inside
    assert json.loads(render(spool, "jobs", "--json").stdout)["jobs"][0]["status"] == "cancelled"
    assert daemons.procs["a"].poll() is None


def test_the_event_stream_reports_a_render_killed_with_sigkill(spool: Spool, daemons: Daemons) -> None:
    _job, address, pid = start_render(spool, daemons)
    host, port = address.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=20)
    connection.request("GET", "/events")
    response = connection.getresponse()
    events: list[dict] = []

    def read() -> None:
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if events[-1].get("event") == "chunk_failed":
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_for(lambda: events, 10, "the first event")
    psutil.Process(pid).kill()
    reader.join(timeout=15)
    connection.close()
    failed = [e for e in events if e.get("event") == "chunk_failed"]
    assert failed and "killed by SIGKILL" in failed[0]["error"]


def raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        try:
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
            return conn.recv(200)
        except (ConnectionResetError, BrokenPipeError):
            return b""


def test_garbage_huge_and_truncated_requests_harm_nothing(spool: Spool, daemons: Daemons) -> None:
    _job, address, pid = start_render(spool, daemons)
    port = int(address.rsplit(":", 1)[1])
    answers = [
        raw(port, b"\x00\xff\xfegarbage\r\n\r\n"),
        raw(port, b"GET /" + b"a" * 200_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        raw(port, b"GET /status HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 100_000 + b"\r\n\r\n"),
        raw(port, b"GET /sta"),
        raw(port, b"POST /pause HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n" + b"z" * 100_000),
    ]
    for answer in answers:
        assert answer == b"" or answer.startswith(b"HTTP/1.") and answer[9:10] == b"4", answer[:60]
    assert daemons.procs["a"].poll() is None and status_of(pid) not in ("gone", psutil.STATUS_STOPPED)
    assert json.loads(get(address, "/status")[1])["state"] == "busy"


def test_render_nodes_shows_a_killed_daemon_offline_at_once(spool: Spool, daemons: Daemons) -> None:
    daemons.start("a")
    daemons.start("b")
    daemons.wait_registered("a", "b")
    wait_for(lambda: all(yaml.safe_load((spool.nodes / f"{n}.yaml").read_text()).get("address") for n in "ab"),
             10, "addresses")
    daemons.procs["b"].send_signal(signal.SIGKILL)
    daemons.procs["b"].wait()
    nodes = {n["name"]: n for n in json.loads(render(spool, "nodes", "--json").stdout)}
    assert nodes["a"]["state"] == "idle" and nodes["b"]["state"] == "offline"


@pytest.mark.parametrize(
    ("args", "says"),
    [(["priority", "nope-0000", "5"], "no such job"), (["cancel", "nope-0000"], "no such job"),
     (["log", "nope-0000"], "no such job"), (["node", "pause", "ghost"], "no such node"),
     (["priority", "x", "high"], "invalid int")],
)
def test_unknown_jobs_and_nodes_get_one_line_and_exit_2(spool: Spool, args: list[str], says: str) -> None:
    result = render(spool, *args, check=False)
    assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr


def test_priority_retry_rm_and_log_on_a_real_job(spool: Spool, daemons: Daemons, tmp_path: Path) -> None:
    job = render(spool, "add", "--cmd", "sh -c 'echo out {start}; exit 4'", "--frames", "1-4", "--chunk", "2",
                 "--max-attempts", "1", "--paused").stdout.strip()
    render(spool, "priority", job, "80")
    assert all(yaml.safe_load(p.read_text())["priority"] == 80 for p in spool.queue.glob("*.yaml"))
    render(spool, "resume", job)
    daemons.start("a", "--exit-when-idle")
    assert daemons.wait_exit("a", timeout=60) == 0
    assert len(list(spool.failed.glob("*.yaml"))) == 2
    log = render(spool, "log", job).stdout
    assert "out 1" in log and "out 3" in log and "==> logs/" in log
    assert "out 3" in render(spool, "log", job, "c0002").stdout
    assert "cancel the job first" not in render(spool, "rm", job, check=False).stderr  # nothing queued: allowed
    assert not (spool.jobs / f"{job}.yaml").exists() and not list(spool.failed.glob("*.yaml"))


def test_drain_finishes_the_chunk_then_takes_nothing_more(spool: Spool, daemons: Daemons, tmp_path: Path) -> None:
    go = tmp_path / "go"
    job = render(spool, "add", "--cmd", f"sh -c 'while [ ! -e {go} ]; do sleep 0.1; done'", "--frames", "1-2",
                 "--chunk", "1").stdout.strip()
    daemons.start("a")
    wait_for(lambda: list(spool.running.glob("*.yaml")), 30, "the first chunk to start")
    assert "drain" in render(spool, "node", "drain", "a").stdout
    go.touch()
    wait_for(lambda: len(list((spool.done / job).glob("*.yaml"))) == 1, 20, "the first chunk to finish")
    time.sleep(1.5)
    assert len(chunk_files(spool.queue)) == 1 and not list(spool.running.glob("*.yaml"))
    nodes = {n["name"]: n for n in json.loads(render(spool, "nodes", "--json").stdout)}
    assert nodes["a"]["state"] == "paused"
    render(spool, "node", "resume", "a")
    wait_for(lambda: len(chunk_files(spool.done / job)) == 2, 20, "the second chunk after resume")


def test_a_private_node_needs_the_token_for_status_too(spool: Spool, daemons: Daemons) -> None:
    daemons.start("a", "--private")
    daemons.wait_registered("a")
    wait_for(lambda: yaml.safe_load((spool.nodes / "a.yaml").read_text()).get("address"), 10, "the address")
    address = yaml.safe_load((spool.nodes / "a.yaml").read_text())["address"]
    assert get(address, "/status")[0] == 401
    token = (spool.root / "token").read_text().strip()
    request = urllib.request.Request(address + "/status", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.loads(response.read())["name"] == "a"
