"""Adding a .blend: choose it in the file browser, see its scenes and missing files, set the job, add it."""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from fs_browser.widget import FileBrowser
from render_tui import actions
from renderd.blendfile import BlendError, BlendInfo, read_blend
from renderd.errors import RenderdError
from renderd.infofiles.format import FrameRange
from renderd.infofiles.spool import Spool
from renderd.planning import VIDEO_CONTAINERS, BlendJobRequest

ALL_SCENES = "*"


class AddScreen(Screen[list[str]]):
    """Dismissed with the ids of the jobs added (an empty list when nothing was added)."""

    BINDINGS = [Binding("escape", "cancel", "Back", id="back")]
    DEFAULT_CSS = """
    AddScreen Horizontal { height: 1fr; }
    AddScreen FileBrowser { width: 1fr; }
    AddScreen #add-form { width: 42; border-left: solid $primary; padding: 0 1; }
    AddScreen #add-form Input, AddScreen #add-form Select { margin-bottom: 1; }
    AddScreen #add-file { color: $text; text-style: bold; }
    AddScreen #add-warnings { color: $warning; }
    """

    def __init__(self, spool: Spool, start: Path):
        super().__init__()
        self.spool = spool
        self.start = start
        self.blend: BlendInfo | None = None
        self.path: Path | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield FileBrowser(self.start, (".blend",), id="add-browser")
            with VerticalScroll(id="add-form"):
                yield Static("choose a .blend on the left", id="add-file")
                yield Static("", id="add-scenes")
                yield Static("", id="add-warnings")
                yield Label("scene")
                yield Select([], id="add-scene", prompt="the file's active scene")
                yield Label("frames (A-B or A-B:STEP)")
                yield Input(id="add-frames", placeholder="the scene's own range")
                yield Label("frames per chunk")
                yield Input("10", id="add-chunk", type="integer")
                yield Label("priority (higher first)")
                yield Input("50", id="add-priority", type="integer")
                yield Label("output (Blender's # pattern)")
                yield Input(id="add-output", placeholder="the spool's output/JOB/")
                yield Label("video")
                yield Select([(c, c) for c in VIDEO_CONTAINERS], id="add-video", prompt="no video")
                yield Button("Add job", id="add-submit", variant="primary", disabled=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "add a .blend"

    @on(FileBrowser.Chosen)
    def chosen(self, event: FileBrowser.Chosen) -> None:
        self._read(event.path)

    @work(thread=True, exclusive=True, group="add-read", exit_on_error=False)
    def _read(self, path: Path) -> None:
        try:
            blend = read_blend(path)
        except BlendError as error:
            self.app.call_from_thread(self._show_error, str(error))
            return
        self.app.call_from_thread(self._show, path, blend)

    def _show_error(self, message: str) -> None:
        self.blend = None
        self.query_one("#add-file", Static).update(message)
        self.query_one("#add-submit", Button).disabled = True

    def _show(self, path: Path, blend: BlendInfo) -> None:
        self.path, self.blend = path, blend
        self.query_one("#add-file", Static).update(f"{path.name} (Blender {blend.version})")
        lines = [f"{'*' if s.active else ' '} {s.name}  {s.frames}  {s.width}x{s.height}  {s.engine}"
                 for s in blend.scenes]
        self.query_one("#add-scenes", Static).update("\n".join(lines))
        warnings = [f"missing {m.kind}: {m.path}" for m in blend.missing]
        self.query_one("#add-warnings", Static).update("\n".join(warnings))
        options = [(s.name, s.name) for s in blend.scenes] + [("all scenes", ALL_SCENES)]
        self.query_one("#add-scene", Select).set_options(options)
        self.query_one("#add-submit", Button).disabled = False

    @on(Button.Pressed, "#add-submit")
    def submit(self) -> None:
        if self.blend is None or self.path is None:
            return
        scene_box, video_box = self.query_one("#add-scene", Select), self.query_one("#add-video", Select)
        try:
            scenes = actions.choose_scenes(self.blend, None if scene_box.is_blank() else str(scene_box.value))
            frames_text = self.query_one("#add-frames", Input).value.strip()
            template = BlendJobRequest(
                blend="", scene=scenes[0], frames=FrameRange.parse(frames_text) if frames_text else None,
                chunk_size=max(1, int(self.query_one("#add-chunk", Input).value or 10)),
                priority=int(self.query_one("#add-priority", Input).value or 50),
                output=self.query_one("#add-output", Input).value.strip() or None,
                video=None if video_box.is_blank() else str(video_box.value),
            )
        except (ValueError, RenderdError) as error:
            self.notify(str(error), severity="error")
            return
        self._add(self.path, scenes, template)

    @work(thread=True, exclusive=True, group="add-submit", exit_on_error=False)
    def _add(self, path: Path, scenes: list, template: BlendJobRequest) -> None:
        try:
            added = actions.add_blend(self.spool, path, scenes, template)
        except (RenderdError, OSError) as error:
            self.app.call_from_thread(self.notify, str(error), severity="error")
            return
        self.app.call_from_thread(self.dismiss, [job_id for job_id, _scene in added])

    def action_cancel(self) -> None:
        self.dismiss([])
