"""`render-fs` driven through Textual's pilot: the chosen path comes back, Escape cancels."""

from __future__ import annotations

from pathlib import Path

from fs_browser.app import FileBrowserApp, FileTree


async def test_choosing_a_file_returns_its_path(tmp_path: Path) -> None:
    (tmp_path / "shot.blend").write_bytes(b"BLENDER")
    (tmp_path / "notes.txt").write_text("not shown")
    (tmp_path / ".hidden.blend").write_text("hidden")
    app = FileBrowserApp(tmp_path, (".blend",))
    async with app.run_test() as pilot:
        await pilot.pause()
        tree = app.query_one(FileTree)
        labels = [str(node.label) for node in tree.root.children]
        assert labels == ["shot.blend"]
        await pilot.press("down", "enter")
        await pilot.pause()
    assert app.return_value == tmp_path / "shot.blend"


async def test_escape_cancels(tmp_path: Path) -> None:
    app = FileBrowserApp(tmp_path)
    async with app.run_test() as pilot:
        await pilot.press("escape")
    assert app.return_value is None
