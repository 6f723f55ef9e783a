"""`render-fs [DIR] [--ext .blend,.pov]`: choose a file and print its path (exit 1 when cancelled)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header

from fs_browser.widget import FileBrowser


def describe_blend(path: Path) -> str:
    """The scenes of a .blend, for the details line (read without Blender)."""
    from renderd.blendfile import BlendError, read_blend

    try:
        info = read_blend(path, check_assets=False)
    except BlendError as error:
        return str(error)
    scenes = ", ".join(f"{'*' if s.active else ''}{s.name} {s.frames}" for s in info.scenes)
    return f"Blender {info.version}: {scenes}"


class FileBrowserApp(App[Path | None]):
    """The file browser on its own: Enter on a file chooses it, Escape cancels."""

    TITLE = "render-fs"
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def __init__(self, start: Path, extensions: tuple[str, ...] = ()):
        super().__init__()
        self.start = start
        self.extensions = extensions

    def compose(self) -> ComposeResult:
        yield Header()
        yield FileBrowser(self.start, self.extensions, id="browser")
        yield Footer()

    @on(FileBrowser.Chosen)
    def chosen(self, event: FileBrowser.Chosen) -> None:
        self.exit(event.path)

    @on(FileBrowser.Highlighted)
    def highlighted(self, event: FileBrowser.Highlighted) -> None:
        browser = self.query_one(FileBrowser)
        if event.path is not None and event.path.suffix.lower() == ".blend":
            self._describe(event.path)
        else:
            browser.show_details("")

    @work(thread=True, exclusive=True, group="describe", exit_on_error=False)
    def _describe(self, path: Path) -> None:
        text = describe_blend(path)
        self.call_from_thread(self.query_one(FileBrowser).show_details, f"{path.name}: {text}")

    def action_cancel(self) -> None:
        self.exit(None)


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
