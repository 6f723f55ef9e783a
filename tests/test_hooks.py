"""Hook commands (pre, post, end, error) and output checks, run by real daemons on real processes."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from renderd.infofiles.spool import Spool
from tests.conftest import FIXTURES, REPO, Daemons, render

HOOKS = REPO / "scripts" / "hooks"


def record(path: Path, stage: str) -> str:
    """A hook command that appends one line of what it was told to `path`."""
    return (f"sh -c 'echo {stage} $RENDERD_HOOK $RENDERD_JOB $RENDERD_CHUNK $RENDERD_FRAMES $RENDERD_NODE "
            f"$RENDERD_FIRST_FRAME-$RENDERD_LAST_FRAME $RENDERD_OUTPUT >> {path}; echo said {stage}'")


def job_of(result) -> str:  # noqa: ANN001
    return result.stdout.strip()


def jobs(spool: Spool) -> dict[str, dict]:
    return {job["id"]: job for job in json.loads(render(spool, "jobs", "--json").stdout)["jobs"]}


def test_pre_and_post_run_around_each_chunk_with_its_details_and_write_into_its_log(
    spool: Spool, daemons: Daemons, tmp_path: Path
) -> None:
    said = tmp_path / "said.txt"
    job = job_of(render(spool, "add", "--cmd", f"sh -c 'echo render {{start}}-{{end}} >> {said}'", "--frames",
                        "1-4", "--chunk", "2", "--hook", f"pre={record(said, 'pre')}",
                        "--hook", f"post={record(said, 'post')}"))
    daemons.start("a", "--exit-when-idle")
    assert daemons.wait_exit("a", timeout=60) == 0
    lines = said.read_text().splitlines()
    output = spool.output / job
    expected = []
    for chunk, frames in (("c0001", "1-2"), ("c0002", "3-4")):
        told = f"{job} {job}-{chunk} {frames} a {frames} {output}"
        expected += [f"pre pre {told}", f"render {frames}", f"post post {told}"]
    assert lines == expected
    log = render(spool, "log", job, "c0001").stdout
    assert "pre hook: sh -c" in log and "said pre" in log and "said post" in log
    assert jobs(spool)[job]["status"] == "done"


def test_a_failing_or_missing_hook_fails_the_chunk_with_its_name_and_exit_status(
    spool: Spool, daemons: Daemons, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    failing = job_of(render(spool, "add", "--cmd", f"touch {ran}", "--max-attempts", "1", "--name", "failing",
                            "--hook", "pre=sh -c 'echo no disk; exit 3'"))
    missing = job_of(render(spool, "add", "--cmd", "true", "--max-attempts", "1", "--name", "missing",
                            "--hook", "post=/nonexistent/hooks/check"))
    daemons.start("a", "--exit-when-idle")
    assert daemons.wait_exit("a", timeout=60) == 0
    assert not ran.exists(), "a failed pre hook stops the chunk before its command"
    failed = {path.name: yaml.safe_load(path.read_text()) for path in spool.failed.glob("*.yaml")}
    assert "pre hook sh: exit status 3" in failed[f"{failing}-c0001.yaml"]["error"]
    assert "post hook /nonexistent/hooks/check" in failed[f"{missing}-c0001.yaml"]["error"]
    listing = render(spool, "jobs").stdout
    assert "pre hook sh: exit status 3" in listing and "no disk" in render(spool, "log", failing).stdout


def test_end_runs_exactly_once_after_the_last_chunk_with_four_daemons_racing(
    spool: Spool, daemons: Daemons, tmp_path: Path
) -> None:
    ends = tmp_path / "ends.txt"
    done = spool.done
    # the end hook counts the completion records present when it runs: all 12 chunks must be there
    job = job_of(render(spool, "add", "--cmd", "sh -c 'sleep 0.05'", "--frames", "1-12", "--chunk", "1",
                        "--hook", f"end=sh -c 'ls {done}/$RENDERD_JOB | grep -c -- -c0 >> {ends}'"))
    (spool.root / "settings.yaml").write_text(f"hooks:\n  end: sh -c 'echo farm >> {ends}'\n")
    for name in "abcd":
        daemons.start(name, "--exit-when-idle")
    for name in "abcd":
        assert daemons.wait_exit(name, timeout=120) == 0
    assert ends.read_text().split() == ["farm", "12"], "the farm's end hook, then the job's, once each"
    assert len(list((spool.logs / job).glob(f"{job}-end.*.log"))) == 1
    assert jobs(spool)[job]["status"] == "done"


def test_error_runs_once_when_a_chunk_fails_for_good(spool: Spool, daemons: Daemons, tmp_path: Path) -> None:
    errors = tmp_path / "errors.txt"
    hook = f"error=sh -c 'echo $RENDERD_CHUNK: $RENDERD_ERROR >> {errors}; echo error hook ran'"
    job = job_of(render(spool, "add", "--cmd", "sh -c 'echo broken; exit 4'", "--max-attempts", "2", "--hook", hook))
    daemons.start("a", "--exit-when-idle")
    assert daemons.wait_exit("a", timeout=60) == 0
    assert errors.read_text().splitlines() == [f"{job}-c0001: exit status 4"]
    assert "error hook ran" in render(spool, "log", job).stdout


def test_example_hooks_check_copy_and_sheet_real_blender_frames(
    spool: Spool, daemons: Daemons, tmp_path: Path
) -> None:
    review = tmp_path / "review"
    (spool.root / "settings.yaml").write_text(
        f"hooks:\n  post: {sys.executable} {HOOKS / 'check_frames.py'}\nchecks:\n  reject_black: true\n")
    job = job_of(render(spool, "add", str(FIXTURES / "b34_two_scenes.blend"), "--scene", "Scene", "--frames", "1-6",
                        "--chunk", "3", "--hook", f"post=sh {HOOKS / 'copy_frames.sh'} {review}",
                        "--hook", f"end=sh {HOOKS / 'contact_sheet.sh'}"))
    daemons.start("a", "--exit-when-idle")
    daemons.start("b", "--exit-when-idle")
    assert daemons.wait_exit("a", timeout=300) == 0 and daemons.wait_exit("b", timeout=300) == 0
    frames = sorted((spool.output / job).glob("scene_*.png"))
    assert len(frames) == 6
    assert sorted(p.name for p in review.iterdir()) == [p.name for p in frames]
    with Image.open(spool.output / job / f"contact_sheet-{job}.png") as sheet:
        assert sheet.size == (6 * 160, 120), "six 64x48 frames scaled to 160 wide, in one row"
    logs = "".join(p.read_text() for p in (spool.logs / job).glob("*.log"))
    assert logs.count("decode cleanly") == 2 and "contact_sheet: 6 frames" in logs


def test_check_frames_hook_catches_damage_the_built_in_check_cannot(
    spool: Spool, daemons: Daemons, tmp_path: Path
) -> None:
    good = tmp_path / "good.png"
    Image.new("RGB", (32, 24), (200, 100, 50)).save(good)
    data = bytearray(good.read_bytes())
    data[data.index(b"IDAT") + 10] ^= 0xFF  # inside the pixel data: the header and IEND are still fine
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(bytes(data))
    job = job_of(render(spool, "add", "--cmd", f"cp {damaged} {{output}}/f_{{frame}}.png", "--frames", "1",
                        "--outputs", "{output}/f_#.png", "--max-attempts", "1",
                        "--hook", f"post={sys.executable} {HOOKS / 'check_frames.py'}"))
    daemons.start("a", "--exit-when-idle")
    assert daemons.wait_exit("a", timeout=60) == 0
    error = yaml.safe_load((spool.failed / f"{job}-c0001.yaml").read_text())["error"]
    assert "post hook" in error and "exit status 1" in error
    assert "f_1.png: damaged IDAT chunk" in render(spool, "log", job).stdout


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg to draw the frames (CI installs it)")
def test_output_checks_reject_black_transparent_and_small_frames(spool: Spool, daemons: Daemons) -> None:
    def frames(source: str, name: str, *checks: str) -> str:
        command = (f"ffmpeg -nostdin -v error -y -f lavfi -i {source} -frames:v 1 "
                   f"{{output}}/{name}_{{frame}}.png")
        return job_of(render(spool, "add", "--cmd", command, "--frames", "1-2", "--outputs", f"{{output}}/{name}_#.png",
                             "--max-attempts", "1", "--name", name, *checks))

    black = frames("color=c=black:s=64x48", "black", "--reject-black")
    clear = frames("color=c=red@0.0:s=64x48,format=rgba", "clear", "--reject-transparent")
    small = frames("testsrc=s=64x48", "small", "--min-size", "1M")
    fine = frames("testsrc=s=64x48", "fine", "--reject-black", "--reject-transparent", "--min-size", "200")
    daemons.start("a", "--exit-when-idle")
    assert daemons.wait_exit("a", timeout=120) == 0
    summary = jobs(spool)
    assert "black_1.png: every pixel is black" in " ".join(summary[black]["errors"])
    assert "clear_1.png: every pixel is transparent" in " ".join(summary[clear]["errors"])
    assert "below the minimum of 1M" in " ".join(summary[small]["errors"])
    assert summary[fine]["status"] == "done" and summary[fine]["done"] == 2
