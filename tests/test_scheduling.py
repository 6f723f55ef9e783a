"""The scheduling choice, on its own: order, capabilities, holds and failed-node avoidance."""

from __future__ import annotations

from renderd.infofiles.format import Requirement
from renderd.scheduling import Candidate, runnable, waiting_for


def candidate(name: str, priority: int = 50, submitted: float = 0.0, frame: int = 1, requires: str = "",
              held: bool = False, failed: tuple[str, ...] = (), job: str | None = None) -> Candidate:
    reqs = tuple(Requirement.parse(r) for r in requires.split(",") if r)
    return Candidate(name, priority, submitted, frame, reqs, held, frozenset(failed), job)


def names(chosen: list[Candidate]) -> list[str]:
    return [c.name for c in chosen]


def test_highest_priority_then_oldest_job_then_lowest_frame() -> None:
    pool = [
        candidate("new-low-frame", submitted=20, frame=1),
        candidate("old-high-frame", submitted=10, frame=50),
        candidate("old-low-frame", submitted=10, frame=1),
        candidate("urgent", priority=90, submitted=30, frame=99),
    ]
    assert names(runnable(pool, "n1", {})) == ["urgent", "old-low-frame", "old-high-frame", "new-low-frame"]


def test_capabilities_and_versions_filter() -> None:
    pool = [candidate("b42", requires="blender>=4.2"), candidate("b34", requires="blender"),
            candidate("pov", requires="povray")]
    assert names(runnable(pool, "n1", {"blender": "3.4.1"})) == ["b34"]
    assert names(runnable(pool, "n1", {"blender": "4.5.0", "povray": "3.7"})) == ["b34", "b42", "pov"]  # by name


def test_paused_files_and_held_jobs_are_skipped() -> None:
    pool = [candidate("held", held=True), candidate("paused-job", job="j1"), candidate("ok", job="j2")]
    assert names(runnable(pool, "n1", {}, held_jobs=frozenset({"j1"}))) == ["ok"]


def test_a_node_leaves_a_chunk_it_failed_to_another_node_that_could_run_it() -> None:
    pool = [candidate("x", failed=("n1",), requires="blender")]
    assert names(runnable(pool, "n1", {"blender": "3.4"}, other_nodes={"n2": {"blender": "3.4"}})) == []
    assert names(runnable(pool, "n2", {"blender": "3.4"}, other_nodes={"n1": {"blender": "3.4"}})) == ["x"]
    # the other node cannot run it, or failed it too: take it again rather than strand it
    assert names(runnable(pool, "n1", {"blender": "3.4"}, other_nodes={"n2": {}})) == ["x"]
    both = [candidate("x", failed=("n1", "n2"))]
    assert names(runnable(both, "n1", {}, other_nodes={"n2": {}})) == ["x"]


def test_waiting_reasons() -> None:
    assert waiting_for(candidate("x", requires="blender>=4.2"), {"n1": {"blender": "3.4.1"}}) == (
        "no live node has blender>=4.2"
    )
    assert waiting_for(candidate("x"), {}) == "no live node"
    assert waiting_for(candidate("x", held=True), {"n1": {}}) == "paused"
    assert waiting_for(candidate("x", requires="blender"), {"n1": {"blender": "3.4"}}) is None
