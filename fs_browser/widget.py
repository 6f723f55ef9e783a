"""FileBrowser: a reusable Textual file-select widget (folder tree, file list, filter, details)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, DirectoryTree, Input, Static

MAX_ROWS = 20_000  # beyond this a folder is listed in part, and says so


@dataclass(frozen=True)
class FileEntry:
    name: str
    path: Path
    is_dir: bool
    size: int | None  # None: a broken symlink or an unreadable entry
    modified: float | None


def list_folder(folder: Path, extensions: tuple[str, ...], show_hidden: bool) -> tuple[list[FileEntry], str | None]:
    """The folder's entries (folders first, then files with a wanted extension) and a problem, if any."""
    entries: list[FileEntry] = []
    try:
        with os.scandir(folder) as iterator:
            for dirent in iterator:
                if not show_hidden and dirent.name.startswith("."):
                    continue
                try:
                    st = dirent.stat()
                    is_dir = stat.S_ISDIR(st.st_mode)
                    size, modified = (None if is_dir else st.st_size), st.st_mtime
                except OSError:  # a broken symlink, or no permission: listed, marked, never followed
                    is_dir, size, modified = False, None, None
                if not is_dir and extensions and not dirent.name.lower().endswith(extensions):
                    continue
                entries.append(FileEntry(dirent.name, Path(dirent.path), is_dir, size, modified))
                if len(entries) >= MAX_ROWS:
                    break
    except OSError as error:
        return [], f"{folder}: {error.strerror or error}"
    entries.sort(key=lambda e: (not e.is_dir, e.name.lower()))
    note = f"showing the first {MAX_ROWS} entries" if len(entries) >= MAX_ROWS else None
    return entries, note


def human_size(size: int | None) -> str:
    if size is None:
        return "?"
    for unit in ("B", "K", "M", "G"):
        if size < 1024 or unit == "G":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024  # type: ignore[assignment]
    return ""


class FolderTree(DirectoryTree):
    """Folders only: files are in the list beside it."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        for path in paths:
            try:
                if path.is_dir() and not path.name.startswith("."):
                    yield path
            except OSError:
                continue


class FileBrowser(Widget):
    """Browse folders and choose a file. Posts FileBrowser.Chosen, and FileBrowser.Highlighted for previews."""

    DEFAULT_CSS = """
    FileBrowser { layout: vertical; }
    FileBrowser #fs-filter { dock: top; }
    FileBrowser #fs-where { height: 1; color: $text-muted; }
    FileBrowser Horizontal { height: 1fr; }
    FileBrowser FolderTree { width: 30%; min-width: 20; }
    FileBrowser #fs-files { width: 1fr; }
    FileBrowser #fs-details { height: auto; max-height: 8; color: $text-muted; }
    """
    BINDINGS = [
        Binding("backspace", "parent", "Up", id="fs-parent", tooltip="Parent folder (or delete a filter letter)"),
        Binding("tilde", "home", "Home", id="fs-home"),
        Binding("ctrl+t", "toggle_hidden", "Hidden", id="fs-hidden", tooltip="Show or hide hidden files"),
    ]

    @dataclass
    class Chosen(Message):
        path: Path

    @dataclass
    class Highlighted(Message):
        path: Path | None

    def __init__(self, start: Path, extensions: tuple[str, ...] = (), **kwargs: object):
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.folder = start.expanduser().resolve()
        self.extensions = tuple(ext.lower() for ext in extensions)
        self.show_hidden = False
        self.entries: list[FileEntry] = []

    def compose(self) -> ComposeResult:
        yield Input(placeholder="type to filter", id="fs-filter")
        yield Static(str(self.folder), id="fs-where")
        with Horizontal():
            yield FolderTree(self.folder, id="fs-tree")
            with Vertical(id="fs-files"):
                yield DataTable(id="fs-table", cursor_type="row", zebra_stripes=True)
                yield Static("", id="fs-details")

    def on_mount(self) -> None:
        self.query_one("#fs-table", DataTable).add_columns("name", "size", "modified")
        self.query_one("#fs-table", DataTable).focus()
        self.load(self.folder)

    def load(self, folder: Path) -> None:
        self.folder = folder
        self.query_one("#fs-where", Static).update(f"{folder}  (listing…)")
        self._list(folder, self.show_hidden)

    @work(thread=True, exclusive=True, group="fs-list", exit_on_error=False)
    def _list(self, folder: Path, show_hidden: bool) -> None:
        entries, note = list_folder(folder, self.extensions, show_hidden)
        self.app.call_from_thread(self._show, folder, entries, note)

    def _show(self, folder: Path, entries: list[FileEntry], note: str | None) -> None:
        if folder != self.folder:
            return  # a later choice of folder is being listed
        self.entries = entries
        where = str(folder) + (f"  ({note})" if note else "")
        self.query_one("#fs-where", Static).update(where)
        self._fill()

    def _fill(self) -> None:
        table = self.query_one("#fs-table", DataTable)
        text = self.query_one("#fs-filter", Input).value.lower()
        table.clear()
        table.add_row("..", "", "", key="..")
        for entry in self.entries:
            if text and text not in entry.name.lower():
                continue
            modified = "" if entry.modified is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.modified))
            size = "folder" if entry.is_dir else human_size(entry.size)
            table.add_row(entry.name + ("/" if entry.is_dir else ""), size, modified, key=str(entry.path))

    @on(Input.Changed, "#fs-filter")
    def _filter_changed(self) -> None:
        self._fill()

    @on(Input.Submitted, "#fs-filter")
    def _filter_done(self) -> None:
        self.query_one("#fs-table", DataTable).focus()

    def on_key(self, event) -> None:  # noqa: ANN001 - a textual Key event
        """Typing on the list filters it (type-to-filter); Backspace then removes a letter."""
        table = self.query_one("#fs-table", DataTable)
        if not table.has_focus:
            return
        box = self.query_one("#fs-filter", Input)
        if event.character and event.character.isprintable() and event.key not in ("tilde",) and len(event.key) == 1:
            box.value += event.character
            event.stop()
        elif event.key == "backspace" and box.value:
            box.value = box.value[:-1]
            event.stop()

    @on(DataTable.RowSelected, "#fs-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value if event.row_key else None
        if key is None:
            return
        if key == "..":
            self.action_parent()
            return
        path = Path(key)
        entry = next((e for e in self.entries if e.path == path), None)
        if entry is not None and entry.is_dir:
            self.query_one("#fs-filter", Input).value = ""
            self.load(path)
        elif entry is not None and entry.size is not None:
            self.post_message(self.Chosen(path))
        else:
            self.app.notify(f"{path.name}: cannot be opened (a broken link, or no permission)", severity="warning")

    @on(DataTable.RowHighlighted, "#fs-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value if event.row_key else None
        path = Path(key) if key and key != ".." else None
        self.post_message(self.Highlighted(path))

    @on(DirectoryTree.DirectorySelected, "#fs-tree")
    def _tree_folder(self, event: DirectoryTree.DirectorySelected) -> None:
        self.load(event.path)

    def show_details(self, text: str) -> None:
        self.query_one("#fs-details", Static).update(text)

    def action_parent(self) -> None:
        self.query_one("#fs-filter", Input).value = ""
        self.load(self.folder.parent)

    def action_home(self) -> None:
        self.load(Path.home())

    def action_toggle_hidden(self) -> None:
        self.show_hidden = not self.show_hidden
        self.load(self.folder)
