"""One job in detail: every chunk with its state, node, progress, attempts and errors, and its logs."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, RichLog

from renderd.infofiles.spool import Spool

LOG_TAIL = 32 * 1024
STATE_STYLES = {"running": "yellow", "failed": "red", "done": "green", "queued": "", "waiting": "dim"}


@dataclass(frozen=True)
class ChunkRow:
    chunk: str
    frames: str
    state: str
    node: str
    progress: str
    attempts: str
    error: str


@dataclass
class ChunksRead(Message):
    rows: list[ChunkRow]
    logs: str


def read_chunks(spool: Spool, job_id: str) -> list[ChunkRow]:
    """Every chunk of a job wherever it is: queued, running, failed or done."""
    rows = []
    for folder, state in ((spool.running, "running"), (spool.queue, "queued"), (spool.failed, "failed")):
        for name in spool.job_files(folder, job_id):
            entry = spool.read_entry(folder, name)
            if entry is None:
                continue
            info = entry.info
            if info is None:
                rows.append(ChunkRow(name.removesuffix(".yaml"), "", "invalid", "", "", "", str(entry.error)))
                continue
            claim = info.claim
            shown = "waiting" if state == "queued" and info.after else state  # a step waiting for the frames
            rows.append(ChunkRow(
                name.removesuffix(".yaml"), str(info.frames or ""), shown, claim.node if claim else "",
                (claim.progress or "") if claim else "", f"{info.attempts}/{info.max_attempts}", info.error or "",
            ))
    for record in spool.job_completions(job_id):
        rows.append(ChunkRow(record.chunk, record.frames or "", "done", record.node, f"{record.seconds:.1f} s",
                             str(record.attempts), ""))
    return sorted(rows, key=lambda row: row.chunk)


def read_logs(spool: Spool, job_id: str, chunk: str | None) -> str:
    """Every attempt's log of one chunk (the last 32 KiB of each), oldest first."""
    if not chunk:
        return ""
    parts = []
    for log in sorted((spool.logs / job_id).glob(f"{chunk}.*.log"), key=lambda p: p.stat().st_mtime):
        try:
            with log.open("rb") as handle:
                handle.seek(max(0, log.stat().st_size - LOG_TAIL))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            continue
        parts.append(f"==> {log.relative_to(spool.root)} <==\n{text}")
    return "\n".join(parts) or f"{chunk} has no log yet"


class JobScreen(Screen[None]):
    """Pushed by Enter on a job; Escape goes back."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="back")]
    DEFAULT_CSS = """
    JobScreen DataTable { height: 1fr; }
    JobScreen RichLog { height: 1fr; border-top: solid $primary; }
    """

    def __init__(self, spool: Spool, job_id: str, interval: float = 1.0):
        super().__init__()
        self.spool = spool
        self.job_id = job_id
        self.interval = interval
        self.chunk: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="chunks", cursor_type="row", zebra_stripes=True)
        yield RichLog(id="chunk-log", wrap=False, max_lines=4000)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"job {self.job_id}"
        self.query_one("#chunks", DataTable).add_columns("chunk", "frames", "state", "node", "progress", "attempts",
                                                        "error")
        self.refresh_chunks()
        self.set_interval(self.interval, self.refresh_chunks)

    def refresh_chunks(self) -> None:
        self._read(self.chunk)

    @work(thread=True, exclusive=True, group="job-detail", exit_on_error=False)
    def _read(self, chunk: str | None) -> None:
        rows = read_chunks(self.spool, self.job_id)
        shown = chunk or (rows[0].chunk if rows else None)
        self.post_message(ChunksRead(rows, read_logs(self.spool, self.job_id, shown)))

    @on(ChunksRead)
    def show(self, message: ChunksRead) -> None:
        table = self.query_one("#chunks", DataTable)
        keep = self.chunk
        table.clear()
        for row in message.rows:
            table.add_row(row.chunk, row.frames, Text(row.state, style=STATE_STYLES.get(row.state, "red")), row.node,
                          row.progress, row.attempts, row.error, key=row.chunk)
        if keep in table.rows:
            table.move_cursor(row=table.get_row_index(keep))
        log = self.query_one("#chunk-log", RichLog)
        log.clear()
        log.write(message.logs)

    @on(DataTable.RowHighlighted, "#chunks")
    def chunk_highlighted(self, event: DataTable.RowHighlighted) -> None:
        chunk = event.row_key.value if event.row_key else None
        if chunk != self.chunk:
            self.chunk = chunk
            self.refresh_chunks()
