"""Failure policy, notices by mail, and routing by tags and versions: real daemons, a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from textual.widgets import DataTable

from render_tui.app import RenderApp
from renderd.infofiles.spool import Spool
from tests.conftest import Daemons, render, wait_for
from tests.test_mail import Collector, start_server
from tests.test_tui import cell_texts, until


@pytest.fixture
def mailbox(spool: Spool) -> Iterator[Collector]:
    """A real SMTP server on 127.0.0.1, named in the farm's settings file."""
    controller, collector = start_server()
    (spool.root / "settings.yaml").write_text(
        f"mail: {{host: 127.0.0.1, port: {controller.port}, from: farm@studio.test, timeout: 5}}\n")
    try:
        yield collector
    finally:
        controller.stop()


def settings(spool: Spool, text: str) -> None:
    with (spool.root / "settings.yaml").open("a") as handle:
        handle.write(text)


def jobs(spool: Spool) -> dict[str, dict]:
    return {job["id"]: job for job in json.loads(render(spool, "jobs", "--json").stdout)["jobs"]}


def test_the_owner_is_mailed_once_when_the_job_finishes(spool: Spool, daemons: Daemons, mailbox: Collector) -> None:
    job = render(spool, "add", "--cmd", "sh -c 'sleep 0.1'", "--frames", "1-6", "--chunk", "2",
                 "--owner", "anna@studio.test").stdout.strip()
    daemons.start("a", "--exit-when-idle")
    daemons.start("b", "--exit-when-idle")
    assert daemons.wait_exit("a") == 0 and daemons.wait_exit("b") == 0
    wait_for(lambda: mailbox.received, 10, "the mail")
    assert len(mailbox.received) == 1
    mail = mailbox.received[0]
    assert mail.rcpt_tos == ["anna@studio.test"] and mail.mail_from == "farm@studio.test"
    assert mail.message["Subject"].startswith(f"[renderd] {job} finished: 6 frames in")
    assert mail.message["X-Renderd-Event"] == "finished"
    body = mail.message.get_content()
    assert "1-6" in body and str(spool.output / job) in body
    notice = yaml.safe_load((spool.notices / f"{job}.finished.yaml").read_text())
    assert notice["state"] == "mailed to anna@studio.test"


def test_a_job_with_too_many_failed_chunks_fails_and_its_owner_is_mailed_once(
    spool: Spool, daemons: Daemons, mailbox: Collector, tmp_path: Path
) -> None:
    settings(spool, "failure: {max_failed_chunks: 2}\n")
    runs = tmp_path / "runs"
    job = render(spool, "add", "--cmd", f"sh -c 'echo {{start}} >> {runs}; echo boom at {{start}}; exit 5'",
                 "--frames", "1-8", "--chunk", "1", "--max-attempts", "1", "--owner", "anna@studio.test").stdout.strip()
    daemons.start("a", "--exit-when-idle")
    daemons.start("b", "--exit-when-idle")
    assert daemons.wait_exit("a") == 0 and daemons.wait_exit("b") == 0
    wait_for(lambda: mailbox.received, 10, "the mail")
    summary = jobs(spool)[job]
    assert summary["status"] == "failed"
    assert any("job failed:" in error and "failed for good" in error for error in summary["errors"])
    # two nodes fail chunks at once: each may have claimed one more before it saw the job fail
    assert len(runs.read_text().split()) <= 4, "once failed, the job's other chunks wait for `render retry`"
    assert summary["queued"] >= 4
    assert len(mailbox.received) == 1, "one mail, though two nodes saw chunks fail"
    message = mailbox.received[0].message
    assert message["X-Renderd-Event"] == "failed" and f"{job} failed" in message["Subject"]
    body = message.get_content()
    assert "exit status 5" in body and "boom at" in body, "the reason and the tail of the log"
    # retry: the job runs again and a new failure would be announced again
    assert "back in the queue" in render(spool, "retry", job).stderr + render(spool, "retry", job).stdout
    assert jobs(spool)[job]["status"] in ("queued", "running")
    assert not list(spool.notices.glob(f"{job}.*"))


def test_a_node_failing_a_job_in_a_row_is_blocklisted_for_it_and_retry_clears_it(
    spool: Spool, daemons: Daemons, tmp_path: Path
) -> None:
    settings(spool, "failure: {blocklist_after: 2}\n")
    attempts = tmp_path / "attempts"
    # fails on node a only (its disk is "full"); b renders slowly enough for a to try twice
    command = f"sh -c 'echo $RENDERD_NODE >> {attempts}; sleep 0.4; test $RENDERD_NODE != a'"
    job = render(spool, "add", "--cmd", command, "--frames", "1-8", "--chunk", "1", "--max-attempts", "5")
    job = job.stdout.strip()
    daemons.start("b", "--exit-when-idle")
    daemons.wait_registered("b")
    daemons.start("a", "--exit-when-idle")
    wait_for(lambda: (spool.blocklist / job / "a.yaml").exists(), 60, "node a to be blocklisted")
    assert "blocklisted: a (2 chunks failed in a row on a" in render(spool, "jobs").stdout
    assert daemons.wait_exit("b") == 0 and daemons.wait_exit("a") == 0
    tried = attempts.read_text().split()
    assert tried.count("a") == 2, "a stops taking the job once blocklisted"
    summary = jobs(spool)[job]
    assert summary["status"] == "done" and summary["done"] == 8
    assert list(summary["blocklisted"]) == ["a"]
    out = render(spool, "retry", job)
    assert "1 node(s) taken off its blocklist" in out.stdout + out.stderr
    assert not (spool.blocklist / job).exists()


def test_a_job_no_live_node_may_run_any_more_fails(spool: Spool, daemons: Daemons, mailbox: Collector) -> None:
    settings(spool, "failure: {blocklist_after: 2}\n")
    job = render(spool, "add", "--cmd", "false", "--frames", "1-4", "--chunk", "1", "--max-attempts", "5",
                 "--owner", "anna@studio.test").stdout.strip()
    daemons.start("a", "--exit-when-idle")
    assert daemons.wait_exit("a") == 0
    summary = jobs(spool)[job]
    assert summary["status"] == "failed"
    assert "every live node that can run it is blocklisted for it (a)" in " ".join(summary["errors"])
    wait_for(lambda: mailbox.received, 10, "the mail")
    assert "blocklisted" in mailbox.received[0].message.get_content()


async def test_tags_and_versions_route_chunks_and_the_tui_says_why_a_job_waits(
    spool: Spool, daemons: Daemons, tmp_path: Path
) -> None:
    who = tmp_path / "who"
    run = f"sh -c 'echo $RENDERD_NODE >> {who}'"
    lighting = render(spool, "add", "--cmd", run, "--tags", "lighting", "--requires", "python>=3.8",
                      "--name", "lighting").stdout.strip()
    future = render(spool, "add", "--cmd", run, "--requires", "blender>=99", "--name", "future").stdout.strip()
    old = render(spool, "add", "--cmd", run, "--requires", "python<3", "--name", "old").stdout.strip()
    daemons.start("plain")
    daemons.start("lights", "--tags", "lighting")
    wait_for(lambda: who.exists() and who.read_text().split() == ["lights"], 30, "the tagged node to run its job")
    summary = jobs(spool)
    assert summary[lighting]["status"] == "done"
    assert summary[future]["waiting"] == "no live node has blender>=99"
    assert summary[old]["waiting"] == "no live node has python<3"
    app = RenderApp(spool, interval=0.3)
    async with app.run_test(size=(200, 30)) as pilot:
        table = app.query_one("#jobs", DataTable)
        await until(pilot, lambda: any("no live node has blender>=99" in row for row in cell_texts(table)),
                    "the waiting reason in the jobs table")


def test_a_broken_settings_file_is_reported_once_and_the_last_good_settings_kept(
    spool: Spool, daemons: Daemons, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    settings(spool, f"hooks: {{pre: 'sh -c \"echo $RENDERD_CHUNK >> {ran}\"'}}\n")
    daemons.start("a")
    wait_for(lambda: "farm settings read" in daemons.log("a"), 20, "the settings to be read")
    (spool.root / "settings.yaml").write_text("hooks: {pre: x}\nfailure: {blocklist_after: 0}\n")
    wait_for(lambda: "ignoring the farm settings" in daemons.log("a"), 20, "the bad edit to be noticed")
    listing = render(spool, "jobs").stdout
    assert "settings.yaml: failure.blocklist_after: must be a whole number 1 or more, got 0" in listing
    job = render(spool, "add", "--cmd", "true").stdout.strip()
    wait_for(lambda: ran.exists(), 20, "the chunk to run with the last good pre hook")
    assert ran.read_text().split() == [f"{job}-c0001"]
    time.sleep(1.0)
    assert daemons.log("a").count("ignoring the farm settings") == 1, "reported once per edit"
    assert daemons.procs["a"].poll() is None
