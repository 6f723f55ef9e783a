"""The command lines' handling of bad input: one clear line, exit 2, nothing written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from renderd.infofiles.spool import Spool
from tests.conftest import render


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--cmd", "echo", "--frames", "10-1"], "--frames"),
        (["--cmd", "echo", "--frames", "1-10", "--chunk", "0"], "--chunk"),
        (["--cmd", "echo 'unbalanced"], "--cmd"),
        (["--cmd", "echo {start}"], "frames"),
        (["--cmd", "echo", "--timeout", "soon"], "--timeout"),
        (["--cmd", "echo", "--requires", "blender>="], "--requires"),
        ([], "--cmd"),
    ],
)
def test_render_add_refuses_bad_input_with_one_line(spool: Spool, args: list[str], names: str) -> None:
    result = render(spool, "add", *args, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("render: ") and names in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not list(spool.queue.iterdir()) and not list(spool.jobs.iterdir())


def test_render_add_prints_the_job_id_and_writes_manifest_and_chunks(spool: Spool) -> None:
    result = render(spool, "add", "--cmd", "echo {start} {end}", "--frames", "1-25", "--chunk", "10",
                    "--priority", "70", "--name", "Shot 10")
    job = result.stdout.strip()
    assert job.startswith("shot-10-") and "\n" not in job
    assert (spool.jobs / f"{job}.yaml").exists()
    chunks = sorted(p.name for p in spool.queue.iterdir())
    assert chunks == [f"{job}-c0001.yaml", f"{job}-c0002.yaml", f"{job}-c0003.yaml", f"{job}-end.yaml"]
    text = (spool.queue / chunks[2]).read_text()
    assert "frames: 21-25" in text and "priority: 70" in text and "command: echo {start} {end}" in text
    listing = render(spool, "jobs").stdout
    assert job in listing and "queued" in listing


def test_commands_on_a_missing_spool_say_so(tmp_path) -> None:  # noqa: ANN001
    for command in ("jobs", "nodes"):
        result = subprocess.run([sys.executable, "-m", "render_tui.cli", command, "--spool", str(tmp_path / "nope")],
                                capture_output=True, text=True)
        assert result.returncode == 2 and "no spool" in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "names"), [(["--name", "bad name"], "--name"), (["--lease", "1", "--heartbeat", "5"], "--lease")]
)
def test_renderd_refuses_bad_options(tmp_path, args: list[str], names: str) -> None:  # noqa: ANN001
    result = subprocess.run([sys.executable, "-m", "renderd.daemon_cli", "--spool", str(tmp_path), *args],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and names in result.stderr and "Traceback" not in result.stderr


def test_renderd_refuses_a_spool_that_is_a_file(tmp_path) -> None:  # noqa: ANN001
    target = tmp_path / "file"
    target.write_text("x")
    result = subprocess.run([sys.executable, "-m", "renderd.daemon_cli", "--spool", str(target)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "not a folder" in result.stderr


def test_the_daemon_and_core_never_import_the_ui() -> None:
    code = (
        "import sys, renderd.daemon, renderd.daemon_cli, renderd.infofiles.spool, renderd.planning, renderd.status;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'render_tui', 'fs_browser')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_pure_cores_do_no_io() -> None:
    code = (
        "import builtins, os, sys;"
        "import renderd.infofiles.format as f, renderd.planning as p, renderd.scheduling as s, renderd.status as st,"
        " renderd.settings, renderd.hours;"
        "bad = [n for n in ('filelock', 'psutil', 'subprocess', 'renderd.infofiles.spool') if n in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
