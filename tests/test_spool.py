"""The spool's transitions on the real filesystem, raced by real threads."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from renderd.infofiles import format as fmt
from renderd.infofiles.format import Attempt, Claim, InfoFile
from renderd.infofiles.records import Completion
from renderd.infofiles.spool import Spool, now_text, write_atomic


def claim_for(node: str):  # noqa: ANN201
    def make(info: InfoFile) -> Claim:
        return Claim(node=node, host="h", pid=1, claimed_at=now_text(), heartbeat=now_text())

    return make


def test_write_atomic_replaces_whole_files_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "x.yaml"
    write_atomic(target, "command: a\n")
    write_atomic(target, "command: b\n")
    assert target.read_text() == "command: b\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.yaml"]
    try:
        write_atomic(target, "command: c\n", exclusive=True)
    except FileExistsError:
        pass
    else:
        raise AssertionError("an exclusive write must not replace an existing file")
    assert target.read_text() == "command: b\n" and len(list(tmp_path.iterdir())) == 1


def test_racing_claimers_take_each_file_exactly_once(spool: Spool) -> None:
    names = [f"c{i:04d}.yaml" for i in range(300)]
    for name in names:
        write_atomic(spool.queue / name, fmt.dump(InfoFile(command="true")))
    taken: list[tuple[str, str]] = []
    lock = threading.Lock()

    def worker(node: str) -> None:
        mine = Spool(spool.root)  # each worker has its own lock objects, as separate processes would
        for name in names:
            held = mine.claim(name, claim_for(node), lambda info: True)
            if held is not None:
                with lock:
                    taken.append((name, node))

    threads = [threading.Thread(target=worker, args=(f"n{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    counts = Counter(name for name, _node in taken)
    assert sorted(counts) == names and set(counts.values()) == {1}
    assert len(list(spool.running.glob("*.yaml"))) == 300 and not list(spool.queue.glob("*.yaml"))
    held = fmt.parse((spool.running / names[0]).read_text())
    assert held.status == "running" and held.attempts == 1 and held.claim is not None


def test_fail_requeues_then_fails_for_good_keeping_history(spool: Spool) -> None:
    write_atomic(spool.queue / "x.yaml", fmt.dump(InfoFile(command="false", max_attempts=2)))
    for attempt in (1, 2):
        held = spool.claim("x.yaml", claim_for("n1"), lambda info: True)
        assert held is not None and held.info.attempts == attempt
        status = spool.fail(held, Attempt(node="n1", error="exit status 1", log=f"logs/{attempt}.log"))
        assert status == ("queued" if attempt == 1 else "failed")
    info = fmt.parse((spool.failed / "x.yaml").read_text())
    assert info.status == "failed" and len(info.history) == 2 and info.claim is None
    assert info.error == "attempt 2 on n1: exit status 1" and info.log == "logs/2.log"
    assert spool.retry_failed("x.yaml")
    again = fmt.parse((spool.queue / "x.yaml").read_text())
    assert again.status == "queued" and again.attempts == 0 and len(again.history) == 2


def test_requeue_never_replaces_a_file_a_person_dropped_meanwhile(spool: Spool) -> None:
    write_atomic(spool.queue / "x.yaml", fmt.dump(InfoFile(command="true")))
    held = spool.claim("x.yaml", claim_for("n1"), lambda info: True)
    assert held is not None
    (spool.queue / "x.yaml").write_text("command: echo mine\n")
    assert spool.requeue(held) == "queued"
    assert (spool.queue / "x.yaml").read_text() == "command: echo mine\n"
    assert fmt.parse((spool.queue / "x~2.yaml").read_text()).argv == ["true"]


def test_completion_is_recorded_before_the_info_file_goes(spool: Spool) -> None:
    write_atomic(spool.queue / "j-c0001.yaml", fmt.dump(InfoFile(command="true", job="j")))
    held = spool.claim("j-c0001.yaml", claim_for("n1"), lambda info: True)
    assert held is not None
    record = Completion(chunk="j-c0001", node="n1", host="h", finished=now_text(), seconds=1.0, job="j")
    assert spool.complete(held, record)
    assert not (spool.running / "j-c0001.yaml").exists()
    assert [c.chunk for c in spool.completions()["j"]] == ["j-c0001"]


def test_a_deleted_running_file_reads_as_cancelled(spool: Spool) -> None:
    write_atomic(spool.queue / "x.yaml", fmt.dump(InfoFile(command="true")))
    held = spool.claim("x.yaml", claim_for("n1"), lambda info: True)
    assert held is not None and held.info.claim is not None
    (spool.running / "x.yaml").unlink()
    assert spool.update_held(held, held.info.claim) == "cancelled"
    assert spool.fail(held, Attempt(node="n1", error="x")) == "cancelled"


def test_a_jobs_plan_vouches_for_untouched_chunks_only(spool: Spool) -> None:
    from renderd.infofiles.format import FrameRange, Requirement
    from renderd.infofiles.spool import signature
    from renderd.planning import CommandJobRequest, plan_command_job

    request = CommandJobRequest(command="echo {start}", frames=FrameRange(1, 25), chunk_size=10, priority=70,
                                requires=(Requirement.parse("blender>=3"),))
    job, chunks, _steps = plan_command_job(request, "echo-0001", now_text())
    spool.create_job(job, chunks)
    plan = spool.read_plan("echo-0001")
    assert sorted(plan) == [name for name, _info in chunks]
    first = plan["echo-0001-c0002.yaml"]
    assert first.sig == signature((spool.queue / "echo-0001-c0002.yaml").stat())
    candidate = first.candidate
    assert (candidate.priority, candidate.first_frame, candidate.job) == (70, 11, "echo-0001")
    assert [str(r) for r in candidate.requires] == ["blender>=3"]
    # a hand edit changes the signature, so the plan no longer speaks for that file
    path = spool.queue / "echo-0001-c0003.yaml"
    path.write_text(path.read_text().replace("priority: 70", "priority: 99"))
    assert plan["echo-0001-c0003.yaml"].sig != signature(path.stat())
    (spool.jobs / "echo-0001.plan").write_text("garbage\n")
    assert spool.read_plan("echo-0001") == {}


def test_a_running_file_broken_by_hand_goes_back_untouched(spool: Spool) -> None:
    write_atomic(spool.queue / "x.yaml", fmt.dump(InfoFile(command="false")))
    held = spool.claim("x.yaml", claim_for("n1"), lambda info: True)
    assert held is not None
    (spool.running / "x.yaml").write_text("command: [oops\n")
    assert spool.fail(held, Attempt(node="n1", error="exit status 1")) == "queued"
    assert (spool.queue / "x.yaml").read_text() == "command: [oops\n"
