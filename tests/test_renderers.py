"""Beyond Blender: POV-Ray animations, one frame split into strips or tiles and stitched, scripts, RenderMan."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageChops
from textual.widgets import TabbedContent

from render_tui.app import RenderApp
from render_tui.preview import FramePreview
from renderd.infofiles.format import FrameRange, InfoFile
from renderd.infofiles.spool import Spool
from renderd.runner import runner_for
from renderd.runner.images import check_image
from tests.conftest import FIXTURES, Daemons, render, wait_for
from tests.test_tui import until

needs_povray = pytest.mark.skipif(not shutil.which("povray"), reason="needs POV-Ray (CI installs it)")


def scene_in(tmp_path: Path, include: bool = False) -> Path:
    """The fixture scene in a folder of its own; with `include`, it also reads a file beside it."""
    target = tmp_path / "scenes" / "spheres.pov"
    target.parent.mkdir(exist_ok=True)
    shutil.copy(FIXTURES / "spheres.pov", target)
    if include:
        (target.parent / "rim.inc").write_text("light_source { <0, 8, 6> color rgb <0.3, 0.3, 0.5> }\n")
        target.write_text(target.read_text() + '#include "rim.inc"\n')
    return target


def povray(scene: Path, output: Path, *options: str, written: Path | None = None) -> Image.Image:
    """A render made directly with POV-Ray, to compare the farm's with (`written`: the file it names)."""
    subprocess.run(["povray", f"+I{scene}", f"+O{output}", *options, "-D", "-GA", "+FN"], check=True,
                   capture_output=True, timeout=120)
    return Image.open(written or output).convert("RGB")


def max_difference(a: Image.Image, b: Image.Image) -> int:
    return max(high for _low, high in ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getextrema())


def logs_of(spool: Spool, job: str, pattern: str = "*.log") -> list[Path]:
    return sorted((spool.logs / job).glob(pattern))


@needs_povray
def test_a_povray_animation_across_three_daemons_renders_every_frame_once_with_its_clock(
    spool: Spool, daemons: Daemons, tmp_path: Path
) -> None:
    scene = scene_in(tmp_path)
    job = render(spool, "add", str(scene), "--frames", "1-24", "--chunk", "4", "--width", "160",
                 "--height", "120").stdout.strip()
    for name in ("a", "b", "c"):
        daemons.start(name, "--exit-when-idle")
    for name in ("a", "b", "c"):
        assert daemons.wait_exit(name, timeout=300) == 0
    frames = sorted((spool.output / job).glob("spheres*.png"))
    assert [p.name for p in frames] == [f"spheres{n:02d}.png" for n in range(1, 25)], "POV-Ray's own numbering"
    assert all(check_image(p, 160, 120) is None for p in frames)
    chunk_logs = logs_of(spool, job, f"{job}-c*.log")
    assert len(chunk_logs) == 6 and sum(log.read_text().count("POV-Ray finished") for log in chunk_logs) == 6
    finished = sum(log.read_text().count("Rendered 19200 of 19200 pixels (100%)") for log in chunk_logs)
    assert finished == 24, "each frame rendered once"
    nodes = {yaml.safe_load(p.read_text())["node"] for p in (spool.done / job).glob(f"{job}-c*.yaml")}
    assert len(nodes) >= 2, "the chunks were shared"
    # frame 13 has the clock a whole-animation render gives it
    direct = povray(scene, tmp_path / "direct.png", "+W160", "+H120", "+KFI1", "+KFF24", "+SF13", "+EF13",
                    written=tmp_path / "direct13.png")
    assert max_difference(direct, Image.open(frames[12])) == 0
    summary = json.loads(render(spool, "jobs", "--json").stdout)["jobs"][0]
    assert (summary["status"], summary["done"], summary["total"]) == ("done", 24, 24)


def test_povray_progress_and_expected_files_come_from_its_own_options(tmp_path: Path) -> None:
    info = InfoFile(command=("povray", "+Iscene.pov", "+O{output}/shot.png", "+W32", "+H24", "+KFI1", "+KFF120",
                             "+SF{start}", "+EF{end}"), frames=FrameRange(9, 11))
    runner = runner_for(info)
    places = {"job": "j", "spool": str(tmp_path), "output": str(tmp_path / "out")}
    [argv] = runner.commands(info, places)
    assert "+SF9" in argv and "+EF11" in argv
    assert [p.name for p in runner.outputs(info, places)] == ["shot009.png", "shot010.png", "shot011.png"]
    assert runner.progress("Rendering frame 2 of 3") == "frame 10 (2/3)"
    assert runner.progress("Rendered 10 of 768 pixels (1%)Rendered 384 of 768 pixels (50%)") == \
        "frame 10, 50% of 768 pixels"
    assert runner.check(info, places) == "3 of 3 frames bad: shot009.png: missing; shot010.png: missing; " \
                                         "shot011.png: missing"


@needs_povray
def test_eight_povray_strips_on_four_daemons_stitch_once_into_the_whole_render(
    spool: Spool, daemons: Daemons, tmp_path: Path
) -> None:
    scene = scene_in(tmp_path, include=True)  # found by the nodes, which run POV-Ray in the spool folder
    job = render(spool, "add", str(scene), "--strips", "8", "--width", "320", "--height", "240").stdout.strip()
    assert len(list(spool.queue.glob(f"{job}-c*.yaml"))) == 8
    for name in "abcd":
        daemons.start(name, "--exit-when-idle")
    for name in "abcd":
        assert daemons.wait_exit(name, timeout=300) == 0
    stitched = Image.open(spool.output / job / "spheres.png")
    whole = povray(scene, tmp_path / "whole.png", "+W320", "+H240", f"+L{scene.parent}")
    assert stitched.size == (320, 240)
    assert max_difference(stitched, whole) == 0, "pixel for pixel the frame one node would have rendered"
    assert len(logs_of(spool, job, f"{job}-stitch.*.log")) == 1, "stitched exactly once"
    assert "8 strips ->" in logs_of(spool, job, f"{job}-stitch.*.log")[0].read_text()
    strips = sorted((spool.output / job / "strips").glob("*.png"))
    assert len(strips) == 8 and max_difference(Image.open(strips[0]), whole) > 0, "each strip holds only its rows"
    summary = json.loads(render(spool, "jobs", "--json").stdout)["jobs"][0]
    assert summary["status"] == "done" and summary["steps"]["stitch"] == "done"


def test_a_blender_frame_in_four_tiles_stitches_into_the_whole_frame(
    spool: Spool, daemons: Daemons, tmp_path: Path
) -> None:
    blend = FIXTURES / "b34_cycles_bench.blend"
    job = render(spool, "add", str(blend), "--frame", "7", "--tiles", "4").stdout.strip()
    daemons.start("a", "--exit-when-idle")
    daemons.start("b", "--exit-when-idle")
    assert daemons.wait_exit("a", timeout=600) == 0 and daemons.wait_exit("b", timeout=600) == 0
    stitched = Image.open(spool.output / job / "bench_0007.png")
    assert stitched.size == (320, 240)
    plain, undithered = tmp_path / "plain_#", tmp_path / "undithered_#"
    base = ["blender", "-noaudio", "-b", str(blend), "-S", "Bench"]
    subprocess.run([*base, "-o", str(plain), "-F", "PNG", "-f", "7"], check=True, capture_output=True, timeout=300)
    subprocess.run([*base, "-o", str(undithered), "-F", "PNG", "--python-expr",
                    "import bpy; bpy.context.scene.render.dither_intensity = 0.0", "-f", "7"],
                   check=True, capture_output=True, timeout=300)
    # measured: identical to a whole render without dither; within Blender's dither noise (2/255) of a default one
    assert max_difference(stitched, Image.open(tmp_path / "undithered_7.png")) == 0
    assert max_difference(stitched, Image.open(tmp_path / "plain_7.png")) <= 2
    assert len(logs_of(spool, job, f"{job}-stitch.*.log")) == 1


def test_a_script_job_gets_its_chunk_frames_as_arguments(spool: Spool, daemons: Daemons, tmp_path: Path) -> None:
    said = tmp_path / "argv.txt"
    script = tmp_path / "bake.py"
    script.write_text(f"import sys\nwith open({str(said)!r}, 'a') as out:\n"
                      "    out.write(' '.join(sys.argv[1:]) + '\\n')\n")
    job = render(spool, "add", str(script), "--frames", "1-5", "--chunk", "2").stdout.strip()
    queued = yaml.safe_load((spool.queue / f"{job}-c0001.yaml").read_text())
    assert queued["command"] == ["python3", str(script), "{frame_args}"] and "python" in queued["requires"]
    daemons.start("a", "--exit-when-idle")
    assert daemons.wait_exit("a") == 0
    assert sorted(said.read_text().splitlines()) == ["1 2", "3 4", "5"]


def test_a_rib_file_waits_for_a_node_with_prman_and_says_so(spool: Spool, daemons: Daemons, tmp_path: Path) -> None:
    rib = tmp_path / "teapot.rib"
    rib.write_text('Display "teapot.tif" "file" "rgba"\nWorldBegin\nWorldEnd\n')
    job = render(spool, "add", str(rib)).stdout.strip()
    assert yaml.safe_load((spool.queue / f"{job}-c0001.yaml").read_text())["command"] == \
        ["prman", "-progress", str(rib)]
    daemons.start("a")
    daemons.wait_registered("a")
    if "prman" in yaml.safe_load((spool.nodes / "a.yaml").read_text())["capabilities"]:
        pytest.skip("this machine has RenderMan: the job would run rather than wait")
    wait_for(lambda: "no live node has prman" in render(spool, "jobs").stdout, 20, "the waiting reason")
    assert (spool.queue / f"{job}-c0001.yaml").exists()


def test_render_add_refuses_what_it_cannot_split(spool: Spool, tmp_path: Path) -> None:
    scene = scene_in(tmp_path)
    for args, message in [
        ((str(scene), "--tiles", "4"), "--tiles: for .blend files"),
        ((str(scene), "--strips", "0"), "--strips: must be 1 to the image's 480 rows"),
        ((str(scene), "--frame", "3"), "--frame: renders one frame in strips"),
        ((str(scene), "--strips", "4", "--frames", "1-24"), "say which frame of the animation to split"),
        ((str(scene), "--strips", "4", "--frames", "1-24", "--frame", "30"), "--frame 30 is not one of"),
        ((str(FIXTURES / "b34_two_scenes.blend"), "--all-scenes", "--tiles", "2"), "--tiles: one scene at a time"),
        ((str(tmp_path / "nothing.pov"),), "nothing.pov: no such file"),
        ((str(tmp_path / "notes.txt"),), "renderd plans .blend, .pov, .py, .rib files"),
    ]:
        result = render(spool, "add", *args, check=False)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr


async def test_the_frame_tab_shows_strips_as_they_land(spool: Spool, tmp_path: Path) -> None:
    scene = scene_in(tmp_path)
    job = render(spool, "add", str(scene), "--strips", "4", "--width", "64", "--height", "48", "--paused")
    job_id = job.stdout.strip()
    strips = spool.output / job_id / "strips"
    strips.mkdir(parents=True)
    for index in (1, 2):  # the top two strips have landed: full-size images, rendered in their own rows
        Image.new("RGB", (64, 48), (255, 255, 255)).save(strips / f"spheres_s{index:02d}.png")
    app = RenderApp(spool, interval=0.3)
    async with app.run_test(size=(100, 40)) as pilot:
        await until(pilot, lambda: app.selected_job == job_id, "the job")
        app.query_one(TabbedContent).active = "frame-tab"
        frame = app.query_one("#frame", FramePreview)
        await until(pilot, lambda: "2 of 4 strips" in frame.caption, "the strips so far")
        assert frame.cells[0][0][0] == (255, 255, 255), "a strip that landed"
        assert frame.cells[-1][0][1] == (0, 0, 0), "a strip still to come"
        Image.new("RGB", (64, 48), (255, 255, 255)).save(strips / "spheres_s03.png")
        await until(pilot, lambda: "3 of 4 strips" in frame.caption, "the third strip")


def test_strips_of_one_frame_of_an_animation_keep_its_clock_and_povray_file_names() -> None:
    from renderd.planning import PovJobRequest, plan_pov_job

    request = PovJobRequest(scene="shots/orbit.pov", width=64, height=48, frames=FrameRange(1, 24), frame=13,
                            strips=2)
    job, chunks, steps = plan_pov_job(request, "orbit-1", "2026-01-01T00:00:00.000Z")
    first = list(chunks[0][1].command)
    assert first[:3] == ["povray", "+Ishots/orbit.pov", "+Lshots"]
    assert {"+KFI1", "+KFF24", "+SF13", "+EF13", "+SR1", "+ER24"} <= set(first)
    assert [name for name, _info in steps] == ["orbit-1-stitch.yaml", "orbit-1-end.yaml"]
    stitch = list(steps[0][1].command)
    assert stitch[:3] == ["renderd-stitch", "--output", "{output}/orbit13.png"]
    assert stitch[3:7] == ["--part", "0", "24", "{output}/strips/orbit_s0113.png"]
    assert steps[1][1].after == ("orbit-1", "orbit-1-stitch")
    assert job.settings["strips"][1] == [24, 48, "{output}/strips/orbit_s0213.png"]
