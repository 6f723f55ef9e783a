"""The Textual front-end: jobs, nodes and logs of the farm, refreshed by a worker thread, managed by keys."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, RichLog, TabbedContent, TabPane

from render_tui import actions
from render_tui.add_screen import AddScreen
from render_tui.confirm import ConfirmScreen
from render_tui.job_screen import JobScreen
from render_tui.preview import FramePreview, half_blocks, newest_frame, strips_so_far
from renderd.errors import RenderdError
from renderd.infofiles.format import parse_time
from renderd.infofiles.records import Job, NodeRecord
from renderd.infofiles.spool import Spool
from renderd.status import Invalid, JobSummary, node_state

BAR_WIDTH = 20
LOG_TAIL = 16 * 1024


@dataclass
class FarmUpdated(Message):
    """A fresh look at the farm, read by the refresh worker (never by the UI thread)."""

    jobs: list[JobSummary]
    invalid: list[Invalid]
    nodes: list[NodeRecord]
    log: tuple[str, str] | None  # (path, tail) of the selected job's newest log
    preview: tuple[list, str] | None = None  # half-block cells of the job's newest frame, and a caption
    error: str | None = None


def progress_bar(summary: JobSummary, width: int = BAR_WIDTH) -> Text:
    """Frames done, running, queued and failed as one coloured bar."""
    total = max(1, summary.total, summary.done + summary.running + summary.queued + summary.failed)
    bar = Text()
    used = 0
    for count, char, style in ((summary.done, "█", "green"), (summary.running, "█", "yellow"),
                               (summary.failed, "█", "red"), (summary.queued, "░", "")):
        cells = round(count * width / total)
        cells = min(cells, width - used)
        bar.append(char * cells, style=style)
        used += cells
    bar.append("░" * (width - used), style="dim")
    return bar


def usage_bar(used: int | None, total: int | None, width: int = 10) -> Text:
    if not total or used is None:
        return Text("")
    share = min(1.0, used / total)
    cells = round(share * width)
    style = "red" if share > 0.9 else "yellow" if share > 0.7 else "green"
    return Text("█" * cells, style=style) + Text("░" * (width - cells), style="dim") + Text(f" {share:.0%}")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}"


class JobsTable(DataTable):
    """The jobs, with the keys that act on the highlighted one (shown in the footer while it has focus)."""

    BINDINGS = [
        Binding("plus,equals_sign", "app.priority(10)", "Prio+", id="priority-up", tooltip="Raise the priority"),
        Binding("minus", "app.priority(-10)", "Prio-", id="priority-down", tooltip="Lower the priority"),
        Binding("p", "app.job('pause')", "Pause", id="pause-job", tooltip="Start no new chunk of the job"),
        Binding("r", "app.job('resume')", "Resume", id="resume-job", tooltip="Let a paused job run"),
        Binding("c", "app.cancel_job", "Cancel", id="cancel-job", tooltip="Cancel the job (asks first)"),
        Binding("R", "app.job('retry')", "Retry", id="retry-job", tooltip="Failed chunks back to the queue"),
    ]


class NodesTable(DataTable):
    """The nodes, with the keys that control the highlighted one."""

    BINDINGS = [
        Binding("P", "app.node('pause')", "Pause node", id="pause-node", tooltip="Suspend the node's render"),
        Binding("U", "app.node('resume')", "Resume node", id="resume-node", tooltip="Let the node run again"),
        Binding("D", "app.node('drain')", "Drain node", id="drain-node", tooltip="Finish the chunk, take no more"),
    ]


class RenderApp(App[None]):
    """`render tui`: the farm in one terminal."""

    TITLE = "renderd"
    CSS_PATH = "render.tcss"
    BINDINGS = [
        Binding("a", "add", "Add", id="add", tooltip="Add a .blend file"),
        Binding("question_mark", "toggle_help", "Help", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(
        self,
        spool: Spool,
        interval: float = 1.0,
        start_folder: Path | None = None,
        clock: Callable[[], float] = time.time,
        label: str | None = None,
    ):
        super().__init__()
        self.spool = spool
        self.clock = clock  # the snapshot tests freeze it
        self.label = label or str(spool.root)
        self.start_folder = start_folder or Path.cwd()
        self.interval = interval
        self.selected_job: str | None = None
        self.selected_node: str | None = None
        self.jobs: list[JobSummary] = []
        self.listening: set[str] = set()
        self.last_refresh = 0.0
        self.refresh_pending = False
        self.reading = False  # a read of the farm is under way in a worker thread
        self.read_again = False
        self._preview_key: tuple | None = None
        self._preview_cells: list = []
        self._strips_landed = 0
        # kept, because a pushed screen (a job's detail, a question) hides them from query_one
        self.jobs_table = JobsTable(id="jobs", cursor_type="row", zebra_stripes=True)
        self.nodes_table = NodesTable(id="nodes", cursor_type="row", zebra_stripes=True)
        self.log_view = RichLog(id="log", wrap=False, highlight=False, max_lines=2000)
        self.frame_view = FramePreview(id="frame")
        self.tabs = TabbedContent(id="tabs")

    def compose(self) -> ComposeResult:
        yield Header()
        with self.tabs:
            with TabPane("Jobs", id="jobs-tab"):
                yield self.jobs_table
            with TabPane("Nodes", id="nodes-tab"):
                yield self.nodes_table
            with TabPane("Log", id="log-tab"):
                yield self.log_view
            with TabPane("Frame", id="frame-tab"):
                yield self.frame_view
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = self.label
        self.jobs_table.focus()
        jobs = self.jobs_table
        jobs.add_columns("job", "progress", "done", "status", "pri", "owner", "elapsed", "eta", "notes")
        nodes = self.nodes_table
        nodes.add_columns("node", "host", "state", "chunk", "progress", "render", "cpu", "load", "memory", "swap",
                          "seen")
        self.refresh_farm()
        self.set_interval(self.interval, self.refresh_farm)

    def refresh_farm(self) -> None:
        if len(self.screen_stack) > 1 and not isinstance(self.screen, ConfirmScreen):
            return  # a job's detail screen is open and does its own reading
        if self.reading:  # one read at a time: on a slow share or a busy machine, reads must not pile up
            self.read_again = True
            return
        self.reading = True
        self.last_refresh = time.monotonic()
        frame = self.frame_view
        self._read_farm(self.selected_job, frame.size.width or 60, max(4, (frame.size.height or 20) - 1))

    # ---- reading the farm, off the UI thread ------------------------------------------------------

    @work(thread=True, exclusive=True, group="refresh", exit_on_error=False)
    def _read_farm(self, job: str | None, width: int, height: int) -> None:
        update = FarmUpdated([], [], [], None, error="could not read the farm")  # whatever happens, one answer
        try:
            jobs, invalid, nodes = actions.read_farm(self.spool, self.clock())
            update = FarmUpdated(jobs, invalid, nodes, self._log_tail(job), self._preview(job, width, height))
        except (RenderdError, OSError) as error:
            update = FarmUpdated([], [], [], None, error=str(error))
        finally:
            self.post_message(update)

    def _preview(self, job_id: str | None, width: int, height: int) -> tuple[list, str] | None:
        """Half blocks of the job's newest frame; decoded again only when that file or the size changed."""
        if not job_id:
            return None
        manifest = self.spool.read_job(job_id)
        folder = self.spool.output / job_id
        if manifest is not None and manifest.settings.get("strips") and manifest.settings.get("size"):
            return self._strips_preview(manifest, width, height)
        if manifest is not None and manifest.output and "{output}" not in manifest.output:
            folder = Path(manifest.output).parent
        frame = newest_frame(folder)
        if frame is None:
            return [], f"{job_id}: no frame yet"
        try:
            key = (frame, frame.stat().st_mtime_ns, width, height)
            if key != self._preview_key:
                self._preview_cells = half_blocks(frame, width, height)
                self._preview_key = key
        except (OSError, ValueError) as error:
            return [], f"{frame.name}: cannot show it ({error})"
        return self._preview_cells, f"{frame.name} ({job_id})"

    def _strips_preview(self, job: Job, width: int, height: int) -> tuple[list, str]:
        """A frame split into strips, as the strips land: each one drawn over black in its own rows."""
        places = {"job": job.id, "spool": str(self.spool.root), "output": str(self.spool.output / job.id)}
        parts = job.settings["strips"]
        try:
            stamps = tuple(sorted(p.stat().st_mtime_ns for p in (self.spool.output / job.id).rglob("*.png")))
        except OSError:
            stamps = ()
        key = (job.id, stamps, width, height)
        if key != self._preview_key:
            try:
                image, landed = strips_so_far(parts, job.settings["size"], places)
            except (OSError, ValueError) as error:
                return [], f"{job.id}: cannot show its strips ({error})"
            self._preview_cells = half_blocks(image, width, height)
            self._preview_key = key
            self._strips_landed = landed
        return self._preview_cells, f"{self._strips_landed} of {len(parts)} strips ({job.id})"

    def _log_tail(self, job_id: str | None) -> tuple[str, str] | None:
        if not job_id:
            return None
        folder = self.spool.logs / job_id
        try:
            newest = max(folder.glob("*.log"), key=lambda path: path.stat().st_mtime)
            with newest.open("rb") as handle:
                handle.seek(max(0, newest.stat().st_size - LOG_TAIL))
                return str(newest.relative_to(self.spool.root)), handle.read().decode("utf-8", "replace")
        except (ValueError, OSError):
            return None

    @on(FarmUpdated)
    def show_farm(self, update: FarmUpdated) -> None:
        self.reading = False
        if self.read_again:  # asked for while the last read was under way
            self.read_again = False
            self.refresh_farm()
        if update.error:
            self.sub_title = update.error
            return
        self.sub_title = f"{self.label} · {len(update.jobs)} job(s) · {len(update.nodes)} node(s)"
        self.jobs = update.jobs
        self._fill_jobs(update.jobs, update.invalid)
        self._fill_nodes(update.nodes)
        self._listen_to_nodes(update.nodes)
        if update.preview is not None:
            self.frame_view.show(*update.preview)
        log = self.log_view
        log.clear()
        if update.log:
            log.write(Text(f"==> {update.log[0]} <==", style="bold"))
            log.write(update.log[1])
        elif self.selected_job:
            log.write(f"job {self.selected_job} has no log yet")

    def _fill_jobs(self, jobs: list[JobSummary], invalid: list[Invalid]) -> None:
        table = self.jobs_table
        keep = self.selected_job
        table.clear()
        for job in jobs:
            notes = job.notes()
            status = Text(job.status, style={"failed": "red", "done": "green", "running": "yellow",
                                              "cancelled": "dim", "paused": "magenta"}.get(job.status, ""))
            table.add_row(job.id, progress_bar(job), f"{job.done}/{job.total}", status, str(job.priority or ""),
                          job.owner or "", _duration(job.elapsed), _duration(job.eta), "; ".join(notes)[:200],
                          key=job.id)
        root = f"{self.spool.root}/"
        for problem in invalid:  # paths shown relative to the spool: shorter, and the same on every node
            table.add_row(Text(Path(problem.path).name, style="red"), Text("invalid", style="red"), "", "", "", "",
                          "", "", problem.reason.replace(root, ""), key=f"invalid:{problem.path}")
        if keep is not None and keep in table.rows:
            table.move_cursor(row=table.get_row_index(keep))
        elif jobs and self.selected_job is None:
            self.selected_job = jobs[0].id

    def _fill_nodes(self, nodes: list[NodeRecord]) -> None:
        table = self.nodes_table
        keep = self.selected_node
        table.clear()
        now = self.clock()
        for record in nodes:
            state = node_state(record, now, actions.pid_check)
            offline = state == "offline"
            style = "dim" if offline else ""
            beat = parse_time(record.heartbeat)
            cells = [
                Text(record.name, style=style), Text(record.host, style=style),
                Text(state, style="dim" if offline else {"busy": "yellow", "paused": "magenta", "suspended": "magenta",
                                                         "standby": "blue", "asleep": "blue"}.get(state, "green")),
                Text("" if offline else (record.chunk or ""), style=style),
                Text("" if offline else "; ".join(filter(None, (record.progress, record.note))), style=style),
                Text("" if offline or not record.render_rss else f"{record.render_rss / 2**20:.0f}M", style=style),
                Text("" if record.cpu_percent is None else f"{record.cpu_percent:.0f}%", style=style),
                Text(f"{record.load[0]:.2f}" if record.load else "", style=style),
                usage_bar(record.memory.get("used"), record.memory.get("total")),
                usage_bar(record.swap.get("used"), record.swap.get("total")),
                Text("" if beat is None else f"{_duration(max(0.0, now - beat))} ago", style=style),
            ]
            table.add_row(*cells, key=record.name)
        if keep is not None and keep in table.rows:
            table.move_cursor(row=table.get_row_index(keep))
        elif nodes and self.selected_node is None:
            self.selected_node = nodes[0].name

    def _listen_to_nodes(self, nodes: list[NodeRecord]) -> None:
        """One event-stream reader per live node, so a finished frame or a crash shows at once."""
        for record in nodes:
            if record.address and record.state != "offline" and record.name not in self.listening:
                self.listening.add(record.name)
                self._listen(record.name, record.address)

    @work(group="events", exit_on_error=False)
    async def _listen(self, name: str, address: str) -> None:
        import aiohttp  # the same library the daemons serve with

        try:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=2, sock_read=60)
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(f"{address}/events") as answer:
                async for raw in answer.content:
                    if raw.startswith(b"data: "):
                        self._refresh_soon()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            pass
        finally:
            self.listening.discard(name)  # looked for again at the next refresh, if the node is alive

    def _refresh_soon(self) -> None:
        """Refresh now, or once a quarter second has passed since the last one (events come in bursts)."""
        wait = 0.25 - (time.monotonic() - self.last_refresh)
        if wait <= 0:
            self.refresh_farm()
        elif not self.refresh_pending:
            self.refresh_pending = True
            self.set_timer(wait, self._pending_refresh)

    def _pending_refresh(self) -> None:
        self.refresh_pending = False
        self.refresh_farm()

    @on(DataTable.RowHighlighted, "#jobs")
    def job_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value if event.row_key else None
        if key and not key.startswith("invalid:"):
            self.selected_job = key

    @on(DataTable.RowSelected, "#jobs")
    def open_job(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value if event.row_key else None
        if key and not key.startswith("invalid:"):
            self.push_screen(JobScreen(self.spool, key, self.interval))

    @on(DataTable.RowHighlighted, "#nodes")
    def node_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.selected_node = event.row_key.value if event.row_key else None

    @on(TabbedContent.TabActivated)
    def tab_changed(self, event: TabbedContent.TabActivated) -> None:
        """Focus the tab's table, so that its keys are the ones in the footer."""
        if event.pane.id != event.tabbed_content.active:
            # a tab left again before this message arrived: focusing its table would switch back to it, and two
            # quick switches would then chase each other for ever
            return
        table = {"jobs-tab": self.jobs_table, "nodes-tab": self.nodes_table}.get(event.pane.id or "")
        if table is not None:
            table.focus()

    def action_add(self) -> None:
        def added(jobs: list[str] | None) -> None:
            if jobs:
                self.notify(f"added {', '.join(jobs)}")
                self.selected_job = jobs[0]
                self.refresh_farm()

        self.push_screen(AddScreen(self.spool, self.start_folder), added)

    def action_toggle_help(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    # ---- actions: the spool is written in a worker, the result shown as a notification ---------------

    def action_priority(self, step: int) -> None:
        job = self._job_for_action()
        if job is not None:
            priority = next((j.priority for j in self.jobs if j.id == job), 50) or 0
            self._act(actions.set_priority, self.spool, job, priority + step)

    def action_job(self, what: str) -> None:
        job = self._job_for_action()
        if job is not None:
            do = {"pause": actions.pause_job, "resume": actions.resume_job, "retry": actions.retry_job}[what]
            self._act(do, self.spool, job)

    def action_cancel_job(self) -> None:
        job = self._job_for_action()
        if job is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._act(lambda spool, job_id: actions.cancel_job(spool, job_id)[0], self.spool, job)

        self.push_screen(ConfirmScreen(f"Cancel job {job}? Its queued chunks are dropped and its renders stopped."),
                         answered)

    def action_node(self, what: str) -> None:
        if self.selected_node is None:
            self.notify("choose a node on the Nodes tab first", severity="warning")
            return
        self._act(actions.node_command, self.spool, self.selected_node, what)

    def _job_for_action(self) -> str | None:
        if self.selected_job is None:
            self.notify("choose a job on the Jobs tab first", severity="warning")
        return self.selected_job

    @work(thread=True, group="action", exit_on_error=False)
    def _act(self, function, *args) -> None:  # noqa: ANN001 - any of the actions functions
        try:
            message = function(*args)
        except RenderdError as error:
            self.call_from_thread(self.notify, str(error).removeprefix("render: "), severity="error")
            return
        self.call_from_thread(self.notify, str(message).removeprefix("render: "))
        self.call_from_thread(self.refresh_farm)
