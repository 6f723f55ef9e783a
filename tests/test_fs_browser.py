"""`render-fs` and its widget driven through Textual's pilot."""

from __future__ import annotations

import shutil
from pathlib import Path

from textual.widgets import DataTable, Static

from fs_browser.app import FileBrowserApp
from fs_browser.widget import FileBrowser, list_folder
from tests.conftest import FIXTURES


def rows(app: FileBrowserApp) -> list[str]:
    table = app.query_one("#fs-table", DataTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def settle(pilot, condition, timeout: float = 10.0) -> None:  # noqa: ANN001
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out")


async def test_choosing_a_file_returns_its_path(tmp_path: Path) -> None:
    (tmp_path / "shot.blend").write_bytes(b"BLENDER")
    (tmp_path / "notes.txt").write_text("not shown")
    (tmp_path / ".hidden.blend").write_text("hidden")
    (tmp_path / "sub").mkdir()
    app = FileBrowserApp(tmp_path, (".blend",))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, lambda: "shot.blend" in rows(app))
        assert rows(app) == ["..", "sub/", "shot.blend"]
        await pilot.press("ctrl+t")
        await settle(pilot, lambda: ".hidden.blend" in rows(app))
        await pilot.press("ctrl+t")
        await settle(pilot, lambda: ".hidden.blend" not in rows(app))
        await pilot.press("s", "h")  # type-to-filter
        await settle(pilot, lambda: rows(app) == ["..", "shot.blend"])
        await pilot.press("down", "enter")
    assert app.return_value == tmp_path / "shot.blend"


async def test_escape_cancels_and_backspace_goes_up(tmp_path: Path) -> None:
    (tmp_path / "inner").mkdir()
    app = FileBrowserApp(tmp_path / "inner")
    async with app.run_test(size=(100, 30)) as pilot:
        browser = app.query_one(FileBrowser)
        await pilot.press("backspace")
        await settle(pilot, lambda: browser.folder == tmp_path.resolve() and "inner/" in rows(app))
        await pilot.press("escape")
    assert app.return_value is None


async def test_a_blend_shows_its_scenes(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "b34_two_scenes.blend", tmp_path / "scenes.blend")
    app = FileBrowserApp(tmp_path, (".blend",))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, lambda: "scenes.blend" in rows(app))
        await pilot.press("down")
        details = app.query_one("#fs-details", Static)
        await settle(pilot, lambda: "Second 100-135" in str(details.render()))
        assert "*Second" in str(details.render()) and "Scene 1-24" in str(details.render())


def test_large_unreadable_and_broken_folders_are_listed_safely(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    for index in range(10_000):
        (big / f"frame_{index:05d}.png").touch()
    entries, note = list_folder(big, (), False)
    assert len(entries) == 10_000 and note is None
    (tmp_path / "dangling.blend").symlink_to(tmp_path / "nowhere")
    entries, _ = list_folder(tmp_path, (".blend",), False)
    dangling = next(e for e in entries if e.name == "dangling.blend")
    assert dangling.size is None and not dangling.is_dir
    entries, problem = list_folder(tmp_path / "missing", (), False)
    assert entries == [] and "missing" in problem
