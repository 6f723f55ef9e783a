"""Blender jobs end to end with the real Blender and ffmpeg: info, planning, rendering, checks, video."""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import yaml

from renderd.infofiles.spool import Spool
from renderd.runner.ffmpeg import count_frames
from renderd.runner.images import check_image
from tests.conftest import FIXTURES, Daemons, render, wait_for

needs_blender = pytest.mark.skipif(shutil.which("blender") is None, reason="Blender is not installed (scripts/setup)")


def saved_frames(spool: Spool, job: str) -> list[int]:
    """Frame numbers from every `Saved:` line Blender printed in the job's logs."""
    frames = []
    for log in (spool.logs / job).glob("*.log"):
        frames += [int(m) for m in re.findall(r"Saved: '[^']*?(\d+)\.\w+'", log.read_text(errors="replace"))]
    return frames


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("b*.blend")))
def test_render_info_lists_every_scene_of_every_fixture(spool: Spool, name: str) -> None:
    result = render(spool, "info", str(FIXTURES / name), "--json")
    info = json.loads(result.stdout)
    scenes = {scene["name"]: scene for scene in info["scenes"]}
    assert info["version"] == {"b34": "3.4", "b45": "4.5", "b50": "5.0"}[name[:3]]
    if "two_scenes" in name:
        assert (scenes["Scene"]["frames"], scenes["Second"]["frames"]) == ("1-24", "100-135")
        assert scenes["Second"]["active"] and not scenes["Scene"]["active"]
        assert (scenes["Scene"]["width"], scenes["Scene"]["height"], scenes["Scene"]["file_format"]) == (64, 48, "PNG")
        assert info["compression"] == ("zstd" if "zstd" in name else None)
    elif "step_output" in name:
        assert scenes["Scene"]["frames"] == "10-29:2" and scenes["Scene"]["file_format"] == "JPEG"
        assert scenes["Scene"]["output"] == "//render/shot_"
        assert [m["path"] for m in info["missing"]] == ["//textures/does_not_exist.png"]
        assert "missing image '//textures/does_not_exist.png'" in render(spool, "info", str(FIXTURES / name)).stderr
    else:
        assert scenes["Bench"]["engine"] == "CYCLES" and scenes["Bench"]["frames"] == "1-40"
    table = render(spool, "info", str(FIXTURES / name)).stdout
    assert all(scene in table for scene in scenes)


@pytest.mark.parametrize(
    ("target", "reason"),
    [("truncated.blend", "truncated"), ("not_a_blend.blend", "not a blend file"), ("missing.blend", "no such file"),
     ("folder.blend", "is a folder")],
)
def test_render_info_refuses_damaged_and_missing_files(spool: Spool, tmp_path: Path, target: str, reason: str) -> None:
    (tmp_path / "folder.blend").mkdir()
    path = FIXTURES / target if (FIXTURES / target).exists() else tmp_path / target
    for command in ("info", "add"):
        result = render(spool, command, str(path), check=False)
        assert result.returncode == 2, result.stderr
        assert reason in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_planning_writes_one_job_per_scene_with_the_full_blender_command(spool: Spool) -> None:
    result = render(spool, "add", str(FIXTURES / "b34_two_scenes.blend"), "--all-scenes", "--chunk", "10")
    jobs = result.stdout.split()
    assert len(jobs) == 2
    files = sorted(p.name for p in spool.queue.glob("*.yaml"))
    assert len(files) == 3 + 4 + 2  # Scene 1-24, Second 100-135, and the end step of each
    second = yaml.safe_load(next(spool.queue.glob(f"{jobs[1]}-c0004.yaml")).read_text())
    assert second["frames"] == "130-135"
    assert second["command"][:6] == ["blender", "-noaudio", "-b", str(FIXTURES / "b34_two_scenes.blend"), "-S",
                                     "Second"]
    assert second["command"][-2:] == ["-f", "{frames}"] and "blender" in second["requires"]
    stepped = render(spool, "add", str(FIXTURES / "b34_step_output.blend"), "--chunk", "4")
    assert "missing image" in stepped.stderr
    chunk = yaml.safe_load(next(spool.queue.glob(f"{stepped.stdout.strip()}-c0002.yaml")).read_text())
    assert chunk["frames"] == "18-24:2"


@needs_blender
def test_three_daemons_render_every_frame_once_and_make_one_video(spool: Spool, daemons: Daemons) -> None:
    job = render(spool, "add", str(FIXTURES / "b34_two_scenes.blend"), "--scene", "Scene", "--chunk", "6",
                 "--video", "mp4").stdout.strip()
    for name in ("a", "b", "c"):
        daemons.start(name, "--exit-when-idle", poll=0.2)
    for name in ("a", "b", "c"):
        assert daemons.wait_exit(name, timeout=300) == 0, daemons.log(name)[-3000:]
    output = spool.output / job
    for frame in range(1, 25):
        assert check_image(output / f"scene_{frame:04d}.png", 64, 48) is None
    assert sorted(saved_frames(spool, job)) == list(range(1, 25)), "each frame rendered exactly once"
    videos = list(output.glob("*.mp4"))
    assert [v.name for v in videos] == [f"{job}.mp4"]
    assert count_frames(videos[0]) == 24
    assert len(list((spool.logs / job).glob(f"{job}-video.*.log"))) == 1
    summary = json.loads(render(spool, "jobs", "--json").stdout)["jobs"][0]
    assert (summary["status"], summary["done"], summary["steps"]) == ("done", 24, {"video": "done", "end": "done"})


@needs_blender
@pytest.mark.parametrize(
    ("fixture", "frames", "pattern"),
    [("b34_two_scenes_zstd.blend", list(range(100, 136)), "second_{:04d}.png"),
     ("b34_step_output.blend", list(range(10, 29, 2)), "scene_{:04d}.jpg")],
)
def test_zstd_and_stepped_scenes_render_the_right_frame_numbers(
    spool: Spool, daemons: Daemons, fixture: str, frames: list[int], pattern: str
) -> None:
    job = render(spool, "add", str(FIXTURES / fixture), "--format", "JPEG" if "step" in fixture else "PNG",
                 "--chunk", "20").stdout.strip()
    daemons.start("a", "--exit-when-idle")
    assert daemons.wait_exit("a", timeout=300) == 0
    written = sorted(p.name for p in (spool.output / job).iterdir())
    assert written == [pattern.format(f) for f in frames]
    assert all(check_image(spool.output / job / name, 64, 48) is None for name in written)


@needs_blender
def test_frames_saved_before_a_daemon_was_killed_are_not_rendered_again(spool: Spool, daemons: Daemons) -> None:
    job = render(spool, "add", str(FIXTURES / "b34_cycles_bench.blend"), "--frames", "1-6", "--chunk", "6").stdout
    job = job.strip()
    output = spool.output / job
    first = daemons.start("a")
    wait_for(lambda: output.is_dir() and len(list(output.glob("*.png"))) >= 2, 180, "two frames to be saved")
    first.send_signal(signal.SIGKILL)
    first.wait()
    time.sleep(0.5)
    before = {int(p.stem.rsplit("_", 1)[1]) for p in output.glob("*.png") if check_image(p, 320, 240) is None}
    assert len(before) >= 2
    daemons.start("b", "--exit-when-idle")
    assert daemons.wait_exit("b", timeout=300) == 0
    log_b = next((spool.logs / job).glob(f"{job}-c*.b.log")).read_text()
    again = {int(m) for m in re.findall(r"Saved: '[^']*?(\d+)\.png'", log_b)}
    assert not (again & before), f"frames {sorted(again & before)} were rendered twice"
    assert again, "node b rendered the frames that were still missing"
    assert all(check_image(output / f"bench_{f:04d}.png", 320, 240) is None for f in range(1, 7))


@needs_blender
def test_a_wrong_scene_a_missing_blend_and_an_unwritable_output_fail_with_a_reason(
    spool: Spool, daemons: Daemons, tmp_path: Path
) -> None:
    blend = FIXTURES / "b34_two_scenes.blend"
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("x")
    wrong = render(spool, "add", "--max-attempts", "1", "--frames", "1-2", "--cmd",
                   f"blender -noaudio -b {blend} -S Nope -o {{output}}/f_#### -F PNG -f {{frames}}").stdout.strip()
    missing = render(spool, "add", "--max-attempts", "1", "--frames", "1-2", "--cmd",
                     f"blender -noaudio -b {tmp_path}/gone.blend -o {{output}}/f_#### -f {{frames}}").stdout.strip()
    unwritable = render(spool, "add", str(blend), "--scene", "Scene", "--frames", "1-2", "--max-attempts", "1",
                        "--output", f"{not_a_folder}/f_####").stdout.strip()
    daemons.start("a", "--exit-when-idle")
    assert daemons.wait_exit("a", timeout=300) == 0
    errors = {row["id"]: " ".join(row["errors"]) for row in json.loads(render(spool, "jobs", "--json").stdout)["jobs"]}
    assert "no scene named 'Nope'" in errors[wrong]
    assert "gone.blend: no such file" in errors[missing]
    assert "frames bad" in errors[unwritable] or "exit status" in errors[unwritable]
    listing = render(spool, "jobs").stdout
    assert "no scene named 'Nope'" in listing and "no such file" in listing


def test_blender_progress_and_output_paths_are_read_from_its_own_lines() -> None:
    from renderd.runner.blender import BlenderRunner, frame_path, read_args

    runner = BlenderRunner()
    runner.total = 3
    lines = [
        "Fra:12 Mem:9.05M (Peak 11.12M) | Time:00:00.01 | Bench, ViewLayer | Sample 3/32",
        "Saved: '/spool/output/j/bench_0012.png'",
        " Time: 00:00.39 (Saving: 00:00.29)",
        "12:00:01.123  render  | Saved: '/spool/output/j/bench_0013.png'",  # 5.x logger prefix
    ]
    assert [runner.progress(line) for line in lines] == [
        "frame 12, 0/3 saved", "frame 12, 1/3 saved", None, "frame 12, 2/3 saved",
    ]
    args = read_args(["blender", "-noaudio", "-b", "/s/shot.blend", "-S", "Main", "-o", "//out/f_##", "-F", "JPEG"])
    assert (args.blend, args.scene, args.output, args.format) == ("/s/shot.blend", "Main", "//out/f_##", "JPEG")
    assert frame_path("//out/f_##", 7, ".jpg", Path("/s")) == Path("/s/out/f_07.jpg")
    assert frame_path("/o/shot_", 7, ".png", Path("/s")) == Path("/o/shot_0007.png")
    assert frame_path("/o/a_###_b_##", 123, ".png", Path("/s")) == Path("/o/a_###_b_123.png")
