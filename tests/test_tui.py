"""The Textual front-end driven by its pilot against a real spool and a real daemon."""

from __future__ import annotations

from collections.abc import Callable

import yaml
from textual.pilot import Pilot
from textual.widgets import DataTable, TabbedContent

from render_tui.app import RenderApp
from render_tui.confirm import ConfirmScreen
from renderd.infofiles.spool import Spool
from tests.conftest import Daemons, chunk_files, render


async def until(pilot: Pilot, condition: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if condition():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def cell_texts(table: DataTable) -> list[str]:
    return [" ".join(str(cell) for cell in table.get_row_at(i)) for i in range(table.row_count)]


async def test_jobs_nodes_priority_resume_and_cancel(spool: Spool, daemons: Daemons) -> None:
    job = render(spool, "add", "--cmd", "sleep 60", "--frames", "1-4", "--chunk", "2", "--paused").stdout.strip()
    (spool.queue / "broken.yaml").write_text("command: [oops\n")
    daemons.start("a")
    daemons.wait_registered("a")
    app = RenderApp(spool, interval=0.3)
    async with app.run_test(size=(120, 30)) as pilot:
        jobs = app.query_one("#jobs", DataTable)
        await until(pilot, lambda: any(job in row for row in cell_texts(jobs)), "the job row")
        rows = cell_texts(jobs)
        assert any("paused" in row for row in rows if job in row)
        assert any("broken.yaml" in row and "bad YAML" in row for row in rows)

        await pilot.press("plus")
        await until(pilot, lambda: all(yaml.safe_load(p.read_text())["priority"] == 60
                                       for p in spool.queue.glob(f"{job}-*.yaml")), "priority 60 in the files")
        await pilot.press("r")
        await until(pilot, lambda: list(spool.running.glob(f"{job}-*.yaml")), "the job to start on the node")

        app.query_one(TabbedContent).active = "nodes-tab"
        nodes = app.query_one("#nodes", DataTable)
        await until(pilot, lambda: any(row.startswith("a ") and "busy" in row for row in cell_texts(nodes)),
                    "node a busy in the Nodes tab")

        app.query_one(TabbedContent).active = "jobs-tab"
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: yaml.safe_load((spool.jobs / f"{job}.yaml").read_text())["status"] == "cancelled",
                    "the job cancelled")
        await until(pilot, lambda: not list(spool.running.glob(f"{job}-*.yaml")), "its render stopped")


async def test_escape_on_the_confirmation_cancels_nothing(spool: Spool) -> None:
    job = render(spool, "add", "--cmd", "true", "--paused").stdout.strip()
    app = RenderApp(spool, interval=0.3)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.selected_job == job, "the job selected")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("escape")
        await pilot.pause(0.5)
    assert yaml.safe_load((spool.jobs / f"{job}.yaml").read_text())["status"] == "paused"
    assert list(spool.queue.glob(f"{job}-*.yaml"))


async def test_the_frame_tab_shows_the_newest_frame_in_half_blocks(spool: Spool) -> None:
    from PIL import Image

    from render_tui.preview import FramePreview

    job = render(spool, "add", "--cmd", "true", "--paused").stdout.strip()
    folder = spool.output / job
    folder.mkdir(parents=True)
    Image.new("RGB", (64, 48), (255, 0, 0)).save(folder / "f_0001.png")
    Image.new("RGB", (64, 48), (0, 0, 255)).save(folder / "f_0002.png")
    app = RenderApp(spool, interval=0.3)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.selected_job == job, "the job")
        app.query_one(TabbedContent).active = "frame-tab"
        frame = app.query_one("#frame", FramePreview)
        await until(pilot, lambda: frame.cells and "f_0002.png" in frame.caption, "the preview")
        top, bottom = frame.cells[0][0]
        assert top == bottom == (0, 0, 255)  # the newest frame, blue
        await pilot.press("question_mark")
        await until(pilot, lambda: app.screen.query("HelpPanel"), "the help panel")


async def test_enter_opens_a_job_with_its_chunks_and_logs(spool: Spool, daemons: Daemons) -> None:
    from render_tui.job_screen import JobScreen

    job = render(spool, "add", "--cmd", "sh -c 'echo hello {start}; exit $(( {start} % 2 ))'", "--frames", "1-2",
                 "--chunk", "1", "--max-attempts", "1").stdout.strip()
    daemons.start("a", "--exit-when-idle")
    assert daemons.wait_exit("a", timeout=60) == 0
    app = RenderApp(spool, interval=0.3)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.selected_job == job, "the job")
        app.query_one("#jobs", DataTable).focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobScreen), "the job screen")
        chunks = app.screen.query_one("#chunks", DataTable)
        await until(pilot, lambda: chunks.row_count == 3, "both chunks and the end step")
        rows = cell_texts(chunks)
        assert any("end" in row and "waiting" in row for row in rows), "the end step waits for the failed chunk"
        assert any("c0001" in row and "failed" in row and "exit status 1" in row for row in rows)
        assert any("c0002" in row and "done" in row for row in rows)
        log = app.screen.query_one("#chunk-log")
        await until(pilot, lambda: any("hello 1" in str(line.text) for line in log.lines), "the first chunk's log")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, JobScreen), "back to the jobs")


async def test_adding_a_blend_through_the_browser_writes_the_right_info_files(spool: Spool, tmp_path) -> None:  # noqa: ANN001
    import shutil

    from render_tui.add_screen import AddScreen
    from tests.conftest import FIXTURES

    shots = tmp_path / "shots"
    shots.mkdir()
    shutil.copy(FIXTURES / "b34_step_output.blend", shots / "step.blend")
    app = RenderApp(spool, interval=0.5, start_folder=shots)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AddScreen), "the add screen")
        screen = app.screen
        table = screen.query_one("#fs-table", DataTable)
        await until(pilot, lambda: table.row_count == 2, "the .blend listed")
        table.focus()
        await pilot.press("down", "enter")
        await until(pilot, lambda: screen.blend is not None, "its scenes read")
        assert "Scene  10-29:2" in str(screen.query_one("#add-scenes").render())
        assert "textures/does_not_exist.png" in str(screen.query_one("#add-warnings").render())
        screen.query_one("#add-chunk").value = "4"
        screen.query_one("#add-priority").value = "70"
        screen.query_one("#add-submit").press()
        await until(pilot, lambda: not isinstance(app.screen, AddScreen), "the job added")
    files = chunk_files(spool.queue)
    assert len(files) == 3  # 10 frames of step 2, 4 a chunk
    first = yaml.safe_load(files[0].read_text())
    assert first["frames"] == "10-16:2" and first["priority"] == 70
    assert first["command"][:4] == ["blender", "-noaudio", "-b", str(shots / "step.blend")]


async def test_node_events_update_the_screen_without_waiting_for_the_next_poll(spool: Spool, daemons: Daemons) -> None:
    daemons.start("a")
    daemons.wait_registered("a")
    for _ in range(100):
        if yaml.safe_load((spool.nodes / "a.yaml").read_text()).get("address"):
            break
        import time as clock

        clock.sleep(0.05)
    app = RenderApp(spool, interval=60)  # the timer alone would not refresh within this test
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: "a" in app.listening, "the node's event stream")
        await pilot.pause(0.5)
        job = render(spool, "add", "--cmd", "true").stdout.strip()
        jobs = app.query_one("#jobs", DataTable)
        await until(pilot, lambda: any(job in row and "done" in row for row in cell_texts(jobs)),
                    "the finished job, brought by the node's events", timeout=10)


async def test_switching_tabs_quickly_settles_on_the_last_one(spool: Spool) -> None:
    """Each tab focuses its table; a tab left before its message arrived must not take the focus back."""
    app = RenderApp(spool, interval=0.3)
    async with app.run_test(size=(120, 30)) as pilot:
        tabs = app.query_one(TabbedContent)
        focus_changes = []
        app.screen.watch(app.screen, "focused", lambda widget: focus_changes.append(widget), init=False)
        tabs.active = "nodes-tab"
        tabs.active = "jobs-tab"  # before the first switch's message is handled
        await pilot.pause(1.0)
        assert tabs.active == "jobs-tab" and app.focused is app.query_one("#jobs", DataTable)
        assert len(focus_changes) <= 2, f"the focus went back and forth {len(focus_changes)} times"
