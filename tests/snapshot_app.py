"""A farm frozen in time for the snapshot tests: a spool written from fixed data and a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from render_tui.app import RenderApp
from renderd.infofiles import format as fmt
from renderd.infofiles.format import Attempt, Claim, FrameRange, InfoFile, Requirement
from renderd.infofiles.records import Completion, Job, NodeRecord, dump_record
from renderd.infofiles.spool import Spool, write_atomic

FROZEN = 1_800_000_000.0


def at(seconds_before: float) -> str:
    return fmt.format_time(datetime.fromtimestamp(FROZEN - seconds_before, UTC))


def make_spool(root: Path) -> Spool:
    spool = Spool(root).ensure()
    blend = ("blender", "-noaudio", "-b", "shots/s010.blend", "-S", "Main", "-o", "{output}/main_####", "-F", "PNG",
             "-f", "{frames}")
    spool.write_job(Job(id="s010-main-1a2b", kind="blender", frames="1-40", chunk_size=10, chunks=4, priority=60,
                        submitted=at(600), owner="ana@studio", source="shots/s010.blend", scene="Main"))
    spool.write_job(Job(id="comp-9f00", kind="command", frames="1-10", chunk_size=10, chunks=1, priority=50,
                        submitted=at(900), owner="bo@studio", command="comp.sh {start} {end}"))
    chunk = InfoFile(command=blend, job="s010-main-1a2b", priority=60, requires=(Requirement("blender"),),
                     submitted=at(600))
    (spool.done / "s010-main-1a2b").mkdir()
    done = Completion(chunk="s010-main-1a2b-c0001", node="ws-1", host="studio-1", finished=at(300), seconds=290.0,
                      job="s010-main-1a2b", frames="1-10")
    write_atomic(spool.done / "s010-main-1a2b" / "s010-main-1a2b-c0001.yaml", dump_record(done))
    claim = Claim(node="ws-1", host="studio-1", pid=4242, claimed_at=at(290), heartbeat=at(2),
                  progress="frame 14, 3/10 saved")
    write_atomic(spool.running / "s010-main-1a2b-c0002.yaml",
                 fmt.dump(chunk.with_changes(frames=FrameRange(11, 20), status="running", attempts=1, claim=claim)))
    for index, frames in ((3, FrameRange(21, 30)), (4, FrameRange(31, 40))):
        write_atomic(spool.queue / f"s010-main-1a2b-c000{index}.yaml", fmt.dump(chunk.with_changes(frames=frames)))
    failed = InfoFile(command="comp.sh {start} {end}", frames=FrameRange(1, 10), job="comp-9f00", status="failed",
                      attempts=3, submitted=at(900), error="attempt 3 on ws-2: exit status 1",
                      log="logs/comp-9f00/comp-9f00-c0001.3.ws-2.log",
                      history=(Attempt(node="ws-2", error="exit status 1"),))
    write_atomic(spool.failed / "comp-9f00-c0001.yaml", fmt.dump(failed))
    (spool.queue / "broken.yaml").write_text("command: [oops\n")
    figures = {"cpu_count": 8, "cpu_percent": 91.0, "load": [7.8, 7.1, 6.0],
               "memory": {"total": 32 * 2**30, "available": 12 * 2**30, "used": 20 * 2**30},
               "swap": {"total": 4 * 2**30, "used": 2**29}}
    spool.write_node(NodeRecord(name="ws-1", host="studio-1", pid=4242, started=at(86400), heartbeat=at(2),
                                state="busy", chunk="s010-main-1a2b-c0002", job="s010-main-1a2b", frames="11-20",
                                progress="frame 14, 3/10 saved", render_rss=1_610_612_736,
                                capabilities={"blender": "4.5.1"}, **figures))
    spool.write_node(NodeRecord(name="ws-2", host="studio-2", pid=77, started=at(90000), heartbeat=at(4000),
                                state="offline", stopped_at=at(4000), **figures))
    return spool


def make_app(root: Path) -> RenderApp:
    return RenderApp(make_spool(root), interval=3600, clock=lambda: FROZEN, label="/mnt/share/spool")
