"""`render-fs [DIR] [--ext .blend,.pov]`: pick a file and print its path (exit 1 when cancelled)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DirectoryTree, Footer, Header


class FileTree(DirectoryTree):
    """A directory tree that shows folders and only the files with the wanted extensions."""

    def __init__(self, path: str | Path, extensions: tuple[str, ...] = (), show_hidden: bool = False, **kwargs):
        self.extensions = tuple(ext.lower() for ext in extensions)
        self.show_hidden = show_hidden
        super().__init__(path, **kwargs)

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        for path in paths:
            if not self.show_hidden and path.name.startswith("."):
                continue
            try:
                is_dir = path.is_dir()
            except OSError:
                continue
            if is_dir or not self.extensions or path.suffix.lower() in self.extensions:
                yield path


class FileBrowserApp(App[Path | None]):
    """The file browser on its own: Enter on a file chooses it, Escape cancels."""

    TITLE = "render-fs"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="cancel"),
        Binding("backspace", "parent", "Parent folder", id="parent"),
        Binding("full_stop", "toggle_hidden", "Hidden files", id="hidden"),
    ]

    def __init__(self, start: Path, extensions: tuple[str, ...] = ()):
        super().__init__()
        self.start = start.resolve()
        self.extensions = extensions

    def compose(self) -> ComposeResult:
        yield Header()
        yield FileTree(self.start, self.extensions, id="tree")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.start)

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.exit(event.path)

    def action_cancel(self) -> None:
        self.exit(None)

    def action_parent(self) -> None:
        tree = self.query_one(FileTree)
        tree.path = Path(tree.path).resolve().parent
        self.sub_title = str(tree.path)

    def action_toggle_hidden(self) -> None:
        tree = self.query_one(FileTree)
        tree.show_hidden = not tree.show_hidden
        tree.reload()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="render-fs", description="Choose a file; its path is printed on stdout.")
    parser.add_argument("dir", nargs="?", default=".", help="folder to start in (default: the current one)")
    parser.add_argument("--ext", default="", help="extensions to show, comma-separated (e.g. .blend,.pov)")
    args = parser.parse_args(argv)
    start = Path(args.dir).expanduser()
    if not start.is_dir():
        print(f"render-fs: {args.dir}: not a folder", file=sys.stderr)
        return 2
    extensions = tuple(e if e.startswith(".") else f".{e}" for e in (x.strip() for x in args.ext.split(",")) if e)
    chosen = FileBrowserApp(start, extensions).run()
    if chosen is None:
        return 1
    print(chosen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
