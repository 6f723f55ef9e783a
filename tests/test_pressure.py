"""Background mode: the gate on synthetic samples and times, sizes, and the sampler on real busy processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

from renderd.infofiles.format import parse_size
from renderd.pressure import (
    GIB,
    MIB,
    PressureGate,
    PressurePolicy,
    Sample,
    UsageSampler,
    _charged_seconds,
    _Seen,
    human_size,
)

PLENTY = 16 * GIB


def cpu(share: float, available: int = PLENTY) -> Sample:
    return Sample(others_cpu=share, available=available)


def feed(gate: PressureGate, samples: list[Sample], start: float = 0.0, step: float = 1.0) -> list[str]:
    """Feed one sample per `step` seconds from `start`; the gate's answers in order."""
    return [gate.update(sample, start + i * step) for i, sample in enumerate(samples)]


# --- the gate ---


def test_an_inactive_policy_never_steps_aside() -> None:
    gate = PressureGate(PressurePolicy())
    assert not gate.policy.active
    assert feed(gate, [cpu(1.0, available=0)] * 3) == ["run"] * 3
    assert not gate.busy and gate.reason is None


def test_a_single_cpu_blip_is_ignored() -> None:
    gate = PressureGate(PressurePolicy(cpu_share=0.5))
    assert feed(gate, [cpu(0.1), cpu(0.9), cpu(0.1), cpu(0.9), cpu(0.2)]) == ["run"] * 5
    assert not gate.busy


def test_cpu_over_the_limit_twice_in_a_row_suspends() -> None:
    gate = PressureGate(PressurePolicy(cpu_share=0.5))
    assert feed(gate, [cpu(0.1), cpu(0.87), cpu(0.87)]) == ["run", "run", "suspend"]
    assert gate.busy
    assert gate.reason == "workstation in use: other processes use 87% CPU (limit 50%)"
    assert feed(gate, [cpu(0.9), cpu(0.95)], start=3) == ["run", "run"]  # suspended once, not again
    assert gate.reason == "workstation in use: other processes use 95% CPU (limit 50%)"  # kept current


def test_exactly_at_the_limit_is_not_over_it() -> None:
    gate = PressureGate(PressurePolicy(cpu_share=0.5))
    assert feed(gate, [cpu(0.5)] * 3) == ["run"] * 3


def test_stays_suspended_until_quiet_for_then_resumes() -> None:
    gate = PressureGate(PressurePolicy(cpu_share=0.5, quiet_for=30))
    feed(gate, [cpu(0.9), cpu(0.9)])
    assert gate.busy
    # quiet from t=10; t=39 is 29 s in, t=40 is 30 s in
    answers = [gate.update(cpu(0.9), t) for t in range(2, 10)]
    answers += [gate.update(cpu(0.1), t) for t in range(10, 40)]
    assert answers == ["run"] * len(answers) and gate.busy
    assert gate.update(cpu(0.1), 40) == "resume"
    assert not gate.busy and gate.reason is None
    assert gate.update(cpu(0.1), 41) == "run"


def test_load_during_the_quiet_time_starts_it_again() -> None:
    gate = PressureGate(PressurePolicy(cpu_share=0.5, quiet_for=10))
    feed(gate, [cpu(0.9), cpu(0.9)])
    assert [gate.update(cpu(0.1), t) for t in range(2, 11)] == ["run"] * 9
    assert gate.update(cpu(0.7), 11) == "run"  # one loaded sample: the quiet stretch starts over
    assert [gate.update(cpu(0.1), t) for t in range(12, 22)] == ["run"] * 10
    assert gate.update(cpu(0.1), 22) == "resume"


def test_hysteresis_resume_needs_cpu_well_below_the_limit() -> None:
    gate = PressureGate(PressurePolicy(cpu_share=0.5, quiet_for=5))
    feed(gate, [cpu(0.9), cpu(0.9)])
    # 45% is under the limit but above 80% of it: not quiet, however long it lasts
    assert [gate.update(cpu(0.45), t) for t in range(2, 60)] == ["run"] * 58
    assert gate.busy
    assert gate.reason is not None and "90%" in gate.reason  # the old reason stands in between
    assert [gate.update(cpu(0.39), t) for t in range(60, 66)] == ["run"] * 5 + ["resume"]


def test_memory_short_suspends_at_once_and_resumes_after_quiet_for() -> None:
    gate = PressureGate(PressurePolicy(min_available=4 * GIB, quiet_for=3))
    low = cpu(0.0, available=int(1.2 * GIB))
    assert gate.memory_short(low) and not gate.memory_short(cpu(0.0, available=4 * GIB))
    assert gate.update(cpu(0.0), 0) == "run"
    assert gate.update(low, 1) == "suspend"
    assert gate.reason == "memory short: 1.2 GiB available (minimum 4 GiB)"
    assert feed(gate, [cpu(0.0, available=4 * GIB)] * 4, start=2) == ["run", "run", "run", "resume"]


def test_cpu_and_memory_together() -> None:
    gate = PressureGate(PressurePolicy(cpu_share=0.5, min_available=4 * GIB, quiet_for=2))
    assert gate.update(cpu(0.9), 0) == "run"
    assert gate.update(cpu(0.9, available=512 * MIB), 1) == "suspend"
    assert gate.reason == (
        "memory short: 512 MiB available (minimum 4 GiB); workstation in use: other processes use 90% CPU (limit 50%)"
    )
    # memory back but CPU still busy: stays aside
    assert feed(gate, [cpu(0.9)] * 3, start=2) == ["run"] * 3
    assert gate.reason == "workstation in use: other processes use 90% CPU (limit 50%)"
    assert feed(gate, [cpu(0.1)] * 3, start=5) == ["run", "run", "resume"]


def test_a_blip_before_suspending_does_not_count_after_resuming() -> None:
    gate = PressureGate(PressurePolicy(cpu_share=0.5, quiet_for=0))
    assert feed(gate, [cpu(0.9), cpu(0.9), cpu(0.1)]) == ["run", "suspend", "resume"]
    assert feed(gate, [cpu(0.9), cpu(0.1), cpu(0.9)], start=3) == ["run"] * 3  # needs two in a row again


@pytest.mark.parametrize(
    "kwargs", [{"cpu_share": 0.0}, {"cpu_share": 1.5}, {"min_available": 0}, {"quiet_for": -1.0}]
)
def test_bad_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PressurePolicy(**kwargs)  # type: ignore[arg-type]


# --- sizes ---


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4G", 4 * GIB),
        ("512M", 512 * MIB),
        ("2GiB", 2 * GIB),
        ("1.5g", int(1.5 * GIB)),
        ("4 GB", 4 * GIB),
        ("64k", 64 * 1024),
        ("1T", 1 << 40),
        ("1048576", 1 << 20),
        ("100b", 100),
        (" 8G ", 8 * GIB),
        (4096, 4096),
    ],
)
def test_sizes_in_settings_and_options(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "4X", "four gigs", "-4G", "1.5", "4G4", -1, True, "4 G B"])
def test_parse_size_refuses_what_is_not_a_size(text: str | int) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(text)
    assert "\n" not in str(caught.value)


def test_human_size() -> None:
    assert human_size(4 * GIB) == "4 GiB"
    assert human_size(int(1.25 * GIB)) == "1.2 GiB"
    assert human_size(512 * MIB) == "512 MiB"


# --- the sampler's accounting, on made-up figures ---


def test_charged_seconds_takes_back_what_a_reaped_child_was_charged() -> None:
    parent, child = (100, 1000.0), (101, 1001.0)
    before = {parent: _Seen(used=5.0, parent=None), child: _Seen(used=3.0, parent=parent)}
    # the child used 0.4 s more, exited and was reaped: the parent's children time grew by its whole 3.4 s
    after = {parent: _Seen(used=5.0 + 3.4, parent=None)}
    assert _charged_seconds(before, after, elapsed=1.0, wall=1010.0) == pytest.approx(0.4)


def test_charged_seconds_for_processes_new_to_the_sampler() -> None:
    # started within the last second: all of its time is from this interval
    young = {(7, 1009.5): _Seen(used=0.4, parent=None)}
    assert _charged_seconds({}, young, elapsed=1.0, wall=1010.0) == pytest.approx(0.4)
    # running for 100 s before we first saw it: its average rate, not its whole life
    old = {(8, 910.0): _Seen(used=50.0, parent=None)}
    assert _charged_seconds({}, old, elapsed=1.0, wall=1010.0) == pytest.approx(0.5)


def test_charged_seconds_ignores_a_vanished_process_whose_parent_is_not_excluded() -> None:
    before = {(9, 1000.0): _Seen(used=2.0, parent=None), (10, 1000.0): _Seen(used=1.0, parent=None)}
    after = {(10, 1000.0): _Seen(used=1.5, parent=None)}
    assert _charged_seconds(before, after, elapsed=1.0, wall=1010.0) == pytest.approx(0.5)


# --- the sampler on real processes ---

BURN = "while True: pass"
# a render-like tree: a parent that keeps starting short helpers, each burning 0.2 s and then reaped
HELPERS = (
    "import subprocess, sys\n"
    "while True:\n"
    "    subprocess.run([sys.executable, '-c', 'import time\\nt = time.time()\\nwhile time.time() - t < 0.2: pass'])\n"
)
Launch = Callable[..., subprocess.Popen]


@pytest.fixture
def start() -> Iterator[Launch]:
    """Starts Python child processes; every one, and all they started, is killed and reaped at the end."""
    started: list[subprocess.Popen] = []

    def launch(code: str, nice: int = 0) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
        started.append(proc)
        os.setpriority(os.PRIO_PROCESS, proc.pid, nice)
        return proc

    yield launch
    for proc in started:
        for child in _descendants(proc.pid):
            with contextlib.suppress(psutil.Error):
                child.kill()
        proc.kill()
        proc.wait(timeout=10)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _measure(excluded: list[int], seconds: float = 1.0) -> tuple[Sample, Sample]:
    """Two samplers over the same stretch, one leaving out nothing, one leaving out `excluded`."""
    everything, without = UsageSampler(), UsageSampler()
    everything.sample([])
    without.sample(excluded)
    time.sleep(seconds)
    return everything.sample([]), without.sample(excluded)


def _skip_if_starved(share: float) -> None:
    # other work on this small machine (tests of other packages, say) can starve a test process,
    # and then there is too little of its CPU to tell apart
    if share < 0.3:
        pytest.skip(f"machine too busy to measure: the test process got only {share:.0%} of the CPUs")


def test_first_sample_has_nothing_to_compare_with() -> None:
    sample = UsageSampler().sample([])
    assert sample.others_cpu == 0.0
    assert 0 < sample.available <= psutil.virtual_memory().total


def test_a_busy_process_counts_unless_it_is_excluded(start: Launch) -> None:
    burner = start(BURN, nice=19)  # at the render's priority: its time is "nice" time, still busy
    time.sleep(0.1)  # let it get going
    used = _cpu_seconds(burner.pid)
    counted, excluded = _measure([burner.pid])
    share = (_cpu_seconds(burner.pid) - used) / (psutil.cpu_count() or 1)
    _skip_if_starved(share)
    assert counted.others_cpu > 0.3  # one of this machine's two cores
    # leaving it out takes its CPU away, and only its CPU (the machine may be doing other work too)
    assert excluded.others_cpu == pytest.approx(max(0.0, counted.others_cpu - share), abs=0.1)
    assert excluded.others_cpu < counted.others_cpu - 0.25


def test_a_render_tree_with_short_lived_helpers_is_excluded(start: Launch) -> None:
    baseline, _ = _measure([], seconds=0.3)
    _skip_if_starved(1.0 - baseline.others_cpu)  # the helpers would have to share with other work
    render = start(HELPERS)
    time.sleep(0.1)
    counted, excluded = _measure([render.pid], seconds=1.2)
    assert counted.others_cpu > 0.3
    # helpers that start and end between two samples are still the render's
    assert excluded.others_cpu < counted.others_cpu - 0.25


def test_an_excluded_process_stays_excluded_while_it_runs(start: Launch) -> None:
    burner = start(BURN)
    sampler, everything = UsageSampler(), UsageSampler()
    sampler.sample([burner.pid])
    everything.sample([])
    time.sleep(0.6)
    # no longer named (say, its leader died and left it behind), but it is still the render's work
    assert sampler.sample([]).others_cpu < everything.sample([]).others_cpu - 0.15
