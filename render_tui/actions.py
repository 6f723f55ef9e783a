"""What the `render` commands and the TUI do to a farm: each writes the spool first, then tells the nodes.

Every function raises UsageError (unknown job, bad value) or RenderdError (a node that cannot be
reached) with a one-line message, and returns a one-line report.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path

from render_tui.client import NodeUnreachable, live_records, tell
from renderd.blendfile import BlendInfo, Scene
from renderd.errors import InfoFileError, RenderdError, SpoolError, UsageError
from renderd.infofiles.records import Job, NodeRecord
from renderd.infofiles.spool import Spool, now_text
from renderd.planning import BlendJobRequest, job_stem, plan_blend_job
from renderd.runner.process import alive
from renderd.settings import parse_settings
from renderd.status import Invalid, JobSummary, node_state, summarize_jobs

PRIORITY_RANGE = (-1_000_000, 1_000_000)


def find_job(spool: Spool, job_id: str) -> Job:
    if not spool.exists():
        raise SpoolError(f"{spool.root}: no spool here")
    job = spool.read_job(job_id)
    if job is None:
        raise UsageError(f"{job_id}: no such job (render jobs lists them)")
    return job


def create_job(spool: Spool, stem: str, plan: Callable[[str], tuple]) -> str:
    """Plan and write a job under a fresh id `stem-xxxx` (the manifest is created exclusively)."""
    for _ in range(20):
        job_id = f"{stem}-{secrets.token_hex(2)}"
        job, chunks, finishing = plan(job_id)
        try:
            spool.create_job(job, chunks, finishing)
        except FileExistsError:
            continue
        return job_id
    raise RenderdError(f"{spool.jobs}: could not find a free job id for {stem!r}")


def choose_scenes(blend: BlendInfo, scene: str | None) -> list[Scene]:
    """`*` for every scene, a name for one, None for the file's active scene."""
    if scene == "*":
        return list(blend.scenes)
    if scene:
        found = blend.scene(scene)
        if found is None:
            names = ", ".join(s.name for s in blend.scenes)
            raise UsageError(f"--scene: {blend.path} has no scene {scene!r} (it has {names})")
        return [found]
    return [blend.active_scene]


def add_blend(
    spool: Spool, path: Path, scenes: list[Scene], template: BlendJobRequest, name: str | None = None
) -> list[tuple[str, Scene]]:
    """One job per scene from `template` (its blend and scene are filled in here); the job ids."""
    spool.ensure()
    where = node_path(spool, path)
    added = []
    for scene in scenes:
        request = dataclasses.replace(template, blend=where, scene=scene)
        stem = job_stem(name or f"{path.stem}-{scene.name}")
        job_id = create_job(spool, stem, lambda job_id, r=request: plan_blend_job(r, job_id, now_text()))
        added.append((job_id, scene))
    return added


def node_path(spool: Spool, path: Path) -> str:
    """A scene file as the nodes will name it: relative to the spool when inside it (each node resolves it
    on its own mount), else absolute."""
    path = path.resolve()
    root = spool.root.resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def set_priority(spool: Spool, job_id: str, priority: int) -> str:
    job = find_job(spool, job_id)
    if not PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]:
        raise UsageError(f"priority: {priority} is out of range ({PRIORITY_RANGE[0]} to {PRIORITY_RANGE[1]})")
    changed = sum(spool.set_priority(name, priority) for name in spool.job_files(spool.queue, job.id))
    spool.update_job(job.id, lambda current: dataclasses.replace(current, priority=priority))
    return f"render: job {job.id}: priority {priority} ({changed} queued chunk(s) rewritten)"


def pause_job(spool: Spool, job_id: str) -> str:
    job = find_job(spool, job_id)
    spool.update_job(job.id, lambda current: dataclasses.replace(current, status="paused"))
    return f"render: job {job.id} paused: no new chunk of it starts (running ones finish)"


def resume_job(spool: Spool, job_id: str) -> str:
    job = find_job(spool, job_id)
    if job.status == "cancelled":
        raise UsageError(f"{job.id}: the job was cancelled; add it again")
    spool.update_job(job.id, lambda current: dataclasses.replace(current, status="active", error=None))
    return f"render: job {job.id} resumed"


def cancel_job(spool: Spool, job_id: str) -> tuple[str, list[str]]:
    """Durable first (manifest, then the files), then fast: the holders are told over their sockets.

    Returns the report and the nodes that did not answer (they notice at their next heartbeat).
    """
    job = find_job(spool, job_id)
    spool.update_job(job.id, lambda current: dataclasses.replace(current, status="cancelled"))
    dropped = sum(spool.remove(spool.queue, name) for name in spool.job_files(spool.queue, job.id))
    holders = set()
    for name in spool.job_files(spool.running, job.id):
        entry = spool.read_entry(spool.running, name)
        if entry is not None and entry.info is not None and entry.info.claim is not None:
            holders.add(entry.info.claim.node)
        spool.remove(spool.running, name)
    token = spool.token()
    late = []
    for record in spool.list_nodes():
        if record.name in holders:
            try:
                tell(record, "cancel", token, job=job.id)
            except NodeUnreachable:
                late.append(record.name)
    report = f"render: job {job.id} cancelled: {dropped} queued chunk(s) dropped, {len(holders)} render(s) stopped"
    return report, late


def retry_job(spool: Spool, job_id: str) -> str:
    job = find_job(spool, job_id)
    moved = sum(spool.retry_failed(name) for name in spool.job_files(spool.failed, job.id))
    cleared = spool.clear_blocklist(job.id)
    spool.clear_notices(job.id)  # a later failure or the finish is announced again
    if job.status in ("cancelled", "failed"):
        spool.update_job(job.id, lambda current: dataclasses.replace(current, status="active", error=None))
    unblocked = f", {cleared} node(s) taken off its blocklist" if cleared else ""
    return f"render: job {job.id}: {moved} failed chunk(s) back in the queue{unblocked}"


def remove_job(spool: Spool, job_id: str) -> str:
    job = find_job(spool, job_id)
    busy = spool.pending_chunks(job.id) + len(spool.job_files(spool.running, job.id))
    if busy:
        raise UsageError(f"{job.id}: {busy} chunk(s) still queued or running; cancel the job first")
    for name in spool.job_files(spool.queue, job.id):  # steps that wait for frames that will never come
        spool.remove(spool.queue, name)
    spool.remove_job_records(job.id)
    return f"render: job {job.id}: records removed; its frames stay in {job.output or spool.output / job.id}"


def node_command(spool: Spool, name: str, action: str) -> str:
    record = spool.read_node(name)
    if record is None:
        raise UsageError(f"{name}: no such node (render nodes lists them)")
    try:
        tell(record, action, spool.token())
    except NodeUnreachable as error:
        raise RenderdError(f"node {record.name}: {error}") from None
    return f"render: node {record.name}: {action}"


def known_token(spool: Spool) -> str | None:
    """The farm's token if one exists already (looking must not create it)."""
    try:
        return os.environ.get("RENDERD_TOKEN") or (spool.root / "token").read_text().strip() or None
    except OSError:
        return None


def pid_check(record: NodeRecord) -> bool | None:
    return alive(record.pid, record.pid_started) if record.host == socket.gethostname() else None


def read_farm(spool: Spool, now: float | None = None) -> tuple[list[JobSummary], list[Invalid], list[NodeRecord]]:
    """Everything `render jobs` shows, read from the spool (`now` for elapsed times and staleness)."""
    if not spool.exists():
        raise SpoolError(f"{spool.root}: no spool here (start renderd or `render add` to create one)")
    now = time.time() if now is None else now
    jobs, problems = spool.list_jobs()
    invalid = [Invalid(error.source, str(error)) for error in problems]
    sig, settings = spool.read_settings()
    if sig is not None:
        try:
            parse_settings(settings, str(spool.settings_path))
        except InfoFileError as error:  # the daemons keep their last good settings meanwhile
            invalid.append(Invalid(error.source, str(error)))
    states = {}
    for folder in (spool.queue, spool.running, spool.failed):
        good = {}
        for name, entry in spool.scan(folder).items():
            if entry.info is not None:
                good[name] = entry.info
            elif entry.error is not None:
                invalid.append(Invalid(entry.error.source, str(entry.error)))
        states[folder.name] = good
    nodes = live_records(spool.list_nodes(), known_token(spool))
    live = {n.name: n.capabilities for n in nodes if node_state(n, now, pid_check) != "offline"}
    # a node's socket knows the frame in progress before its next heartbeat reaches the info file
    fresh = {(n.name, f"{n.chunk}.yaml"): n.progress for n in nodes if n.chunk and n.progress}
    running = {}
    for name, info in states["running"].items():
        claim = info.claim
        progress = fresh.get((claim.node, name)) if claim else None
        running[name] = info.with_changes(claim=dataclasses.replace(claim, progress=progress)) if progress else info
    free = {n.name: n.memory["available"] for n in nodes if n.name in live and n.memory.get("available")}
    summaries = summarize_jobs(jobs, states["queue"], running, states["failed"], spool.completions(), live, now,
                               spool.blocklisted_nodes(), free)
    return summaries, invalid, nodes
