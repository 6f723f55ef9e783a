"""Shared test helpers: an isolated home, a spool under tmp_path, and real daemons started as processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from renderd.infofiles.spool import Spool

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the developer's own spool and settings out of every test; share one capability cache per session."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(_shared_cache(tmp_path_factory)))
    monkeypatch.delenv("RENDERD_SPOOL", raising=False)
    monkeypatch.delenv("RENDERD_TOKEN", raising=False)
    return home


_CACHE: list[Path] = []


def _shared_cache(factory: pytest.TempPathFactory) -> Path:
    if not _CACHE:
        _CACHE.append(factory.mktemp("cache"))
    return _CACHE[0]


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool").ensure()


class Daemons:
    """Real `renderd` processes on one spool; every one is stopped and reaped when the test ends."""

    def __init__(self, spool: Spool, logdir: Path):
        self.spool = spool
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str, poll: float = 0.1, heartbeat: float = 0.5, lease: float = 60.0,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115 - closed when the process is reaped
        proc = subprocess.Popen(
            [sys.executable, "-m", "renderd.daemon_cli", "--spool", str(self.spool.root), "--name", name,
             "--poll", str(poll), "--heartbeat", str(heartbeat), "--lease", str(lease), "--bind", "127.0.0.1",
             *args],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )
        log.close()
        self.procs[name] = proc
        return proc

    def wait_registered(self, *names: str, timeout: float = 30.0) -> None:
        wait_for(lambda: all((self.spool.nodes / f"{n}.yaml").exists() for n in names), timeout,
                 f"nodes {names} to register")

    def log(self, name: str) -> str:
        return (self.logdir / f"{name}.log").read_text(errors="replace")

    def wait_exit(self, name: str, timeout: float = 120.0) -> int:
        try:
            return self.procs[name].wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"renderd {name} did not exit within {timeout} s:\n{self.log(name)[-3000:]}") from None

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def daemons(spool: Spool, tmp_path: Path) -> Iterator[Daemons]:
    logdir = tmp_path / "daemon-logs"
    logdir.mkdir()
    group = Daemons(spool, logdir)
    try:
        yield group
    finally:
        group.stop_all()


def render(spool: Spool, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real `render` command line against the test spool."""
    result = subprocess.run(
        [sys.executable, "-m", "render_tui.cli", *args[:1], "--spool", str(spool.root), *args[1:]],
        capture_output=True, text=True, timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"render {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def chunk_files(folder: Path) -> list[Path]:
    """The chunk info files in a folder, in name order: not the job's steps (JOB-end.yaml), whatever the job id."""
    return sorted(p for p in folder.glob("*.yaml") if re.search(r"-c\d+\.yaml$", p.name))


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
