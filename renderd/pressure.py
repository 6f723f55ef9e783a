"""Background mode: step aside while the workstation is in use, come back once it is quiet.

Two halves, kept apart so the decision can be tested without a machine:
- `PressureGate` is a pure state machine over `Sample`s and times the caller supplies.
- `UsageSampler` is the only part that asks psutil, and it leaves the render's own CPU out:
  a render alone must never look like somebody working at the desk.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import psutil

# CPU must be over the limit in this many samples in a row before stepping aside: a browser tab
# loading or a compiler run of one second should not stop a render
CPU_SAMPLES = 2
# Hysteresis: once stepped aside, other processes must fall below this share of the limit (not just
# under it) to count as quiet, so load hovering at the limit does not resume and suspend in turns.
# Memory has no such margin: a suspended render keeps its memory, so a margin above the minimum
# could keep it stopped for good.
RESUME_SHARE = 0.8

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class PressurePolicy:
    """When to step aside; a threshold left as None is not watched."""

    cpu_share: float | None = None  # suspend when other processes use more than this share (0..1] of all CPUs
    min_available: int | None = None  # bytes; suspend (and take no new chunk) when available memory is below
    quiet_for: float = 30.0  # seconds every threshold must hold before resuming

    def __post_init__(self) -> None:
        if self.cpu_share is not None and not 0 < self.cpu_share <= 1:
            raise ValueError(f"CPU share must be above 0 and at most 1, not {self.cpu_share}")
        if self.min_available is not None and self.min_available <= 0:
            raise ValueError(f"minimum available memory must be positive, not {self.min_available}")
        if self.quiet_for < 0:
            raise ValueError(f"quiet time must not be negative, not {self.quiet_for}")

    @property
    def active(self) -> bool:
        return self.cpu_share is not None or self.min_available is not None


@dataclass(frozen=True)
class Sample:
    """How loaded the machine is, leaving out the render and this daemon."""

    others_cpu: float  # share 0..1 of all CPUs used by other processes since the previous sample
    available: int  # bytes of available memory (psutil.virtual_memory().available)


class PressureGate:
    """Decides, sample by sample, whether the node renders or steps aside.

    `update` answers "suspend" once when stepping aside, "resume" once when coming back, and "run"
    otherwise (meaning: no change). Memory short suspends at once; CPU over the limit must be seen
    in `CPU_SAMPLES` samples in a row. Resuming needs `quiet_for` seconds in which every sample was
    quiet: CPU below `RESUME_SHARE` of the limit and memory at or above the minimum.
    """

    def __init__(self, policy: PressurePolicy):
        self.policy = policy
        self._busy = False
        self._reason: str | None = None
        self._over = 0  # CPU-over samples in a row while not busy
        self._quiet_since: float | None = None  # start of the current quiet stretch while busy

    @property
    def busy(self) -> bool:
        """Whether the node is currently stepped aside."""
        return self._busy

    @property
    def reason(self) -> str | None:
        """Why the node stepped aside (the latest load seen while aside); None when not busy."""
        return self._reason

    def memory_short(self, sample: Sample) -> bool:
        return self.policy.min_available is not None and sample.available < self.policy.min_available

    def update(self, sample: Sample, now: float) -> str:
        """Feed one sample taken at `now` (seconds on a monotonic clock); returns "run", "suspend" or "resume"."""
        if not self.policy.active:
            return "run"
        limit = self.policy.cpu_share
        cpu_over = limit is not None and sample.others_cpu > limit
        memory_short = self.memory_short(sample)
        if not self._busy:
            self._over = self._over + 1 if cpu_over else 0
            cpu_loaded = self._over >= CPU_SAMPLES
            if not (memory_short or cpu_loaded):
                return "run"
            # not busy -> busy
            self._busy, self._over, self._quiet_since = True, 0, None
            self._reason = self._explain(sample, cpu_loaded, memory_short)
            return "suspend"
        quiet = not memory_short and (limit is None or sample.others_cpu < limit * RESUME_SHARE)
        if not quiet:
            self._quiet_since = None
            if cpu_over or memory_short:  # between the resume and suspend levels the old reason stands
                self._reason = self._explain(sample, cpu_over, memory_short)
            return "run"
        if self._quiet_since is None:
            self._quiet_since = now
        if now - self._quiet_since < self.policy.quiet_for:
            return "run"
        # busy -> not busy
        self._busy, self._reason, self._quiet_since = False, None, None
        return "resume"

    def _explain(self, sample: Sample, cpu: bool, memory: bool) -> str:
        reasons = []
        if memory and self.policy.min_available is not None:
            reasons.append(
                f"memory short: {human_size(sample.available)} available"
                f" (minimum {human_size(self.policy.min_available)})"
            )
        if cpu and self.policy.cpu_share is not None:
            reasons.append(
                f"workstation in use: other processes use {sample.others_cpu:.0%} CPU"
                f" (limit {self.policy.cpu_share:.0%})"
            )
        return "; ".join(reasons)


def human_size(size: int) -> str:
    """Sizes as "1.2 GiB", "4 GiB" or "512 MiB": short enough for a status line."""
    if size >= GIB:
        return f"{size / GIB:.1f}".removesuffix(".0") + " GiB"
    return f"{size / MIB:.0f} MiB"


_Key = tuple[int, float]  # (pid, create_time): a pid alone may be reused


@dataclass(frozen=True)
class _Seen:
    """What one excluded process had used when sampled."""

    used: float  # CPU seconds of the process itself plus the children it has reaped
    parent: _Key | None  # its parent, if that is excluded too


class UsageSampler:
    """Measures how busy the machine is apart from the render, from one call to the next.

    `others_cpu` is the machine's busy CPU time since the previous call, minus the CPU time of the
    excluded processes over the same stretch, over wall time x CPU count. Busy time is total minus
    idle, iowait and steal (time a hypervisor gave to other machines is nobody's use here) and
    minus guest time (already counted in user time). Nice time is busy: the render runs at nice 19,
    and is subtracted as an excluded process instead.

    Excluded: this process itself (not its children), and each pid in `exclude_pids` with all its
    descendants. A process once seen among them stays excluded while it runs, even after it leaves
    the list or is re-parented out of the tree: it is still the render's work. A process's CPU
    includes the children it has reaped, so helpers that start and finish between two samples
    still count as the render's (see `_charged_seconds`).

    The first call has nothing to compare with and returns others_cpu 0.0 rather than blocking
    for a measurement; the gate needs two loaded samples before it acts anyway.
    """

    def __init__(self) -> None:
        self._cpus = psutil.cpu_count() or 1
        self._own = psutil.Process()
        self._last: tuple[float, float] | None = None  # (monotonic time, machine busy seconds)
        self._seen: dict[_Key, _Seen] = {}
        self._processes: dict[_Key, psutil.Process] = {}

    def sample(self, exclude_pids: Iterable[int]) -> Sample:
        available = psutil.virtual_memory().available
        now = time.monotonic()
        busy = _busy_seconds(psutil.cpu_times()._asdict())
        seen = self._excluded(exclude_pids)
        last, self._last = self._last, (now, busy)
        before, self._seen = self._seen, seen
        if last is None:
            return Sample(others_cpu=0.0, available=available)
        elapsed = max(now - last[0], 1e-6)
        excluded = _charged_seconds(before, seen, elapsed, time.time())
        others = (busy - last[1] - excluded) / (elapsed * self._cpus)
        return Sample(others_cpu=min(1.0, max(0.0, others)), available=available)

    def _excluded(self, exclude_pids: Iterable[int]) -> dict[_Key, _Seen]:
        """The excluded processes running now, with their CPU time; keeps `_processes` to match."""
        processes = [self._own]
        for pid in exclude_pids:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                processes.append(root)
                processes.extend(root.children(recursive=True))
        processes.extend(self._processes.values())  # seen before: excluded while they run
        found: dict[_Key, tuple[float, int]] = {}
        self._processes = {}
        for process in processes:
            try:
                key = (process.pid, process.create_time())
                if key in found or not process.is_running():  # is_running also catches a reused pid
                    continue
                times = process.cpu_times()
                found[key] = (times.user + times.system + times.children_user + times.children_system, process.ppid())
            except psutil.Error:
                continue  # gone between listing and reading: accounted as vanished
            self._processes[key] = process
        by_pid = {key[0]: key for key in found}
        return {key: _Seen(used, by_pid.get(ppid)) for key, (used, ppid) in found.items()}


def _charged_seconds(before: Mapping[_Key, _Seen], after: Mapping[_Key, _Seen], elapsed: float, wall: float) -> float:
    """CPU seconds the excluded processes used between two samples `elapsed` seconds apart.

    A process seen both times is charged the growth of its time. One new to us is charged all of
    it if it started within the interval, else its average rate over its life (we cannot know more).
    A process that vanished was reaped; if its parent is excluded, that parent's children time has
    just grown by the vanished one's whole life, of which `before` shows what was charged already:
    taking that back keeps it from being counted twice.
    """
    charged: dict[_Key, float] = {}
    for key, now in after.items():
        then = before.get(key)
        if then is not None:
            charged[key] = now.used - then.used
        else:
            age = max(wall - key[1], elapsed)
            charged[key] = now.used * elapsed / age
    for key, then in before.items():
        if key not in after and then.parent in charged:
            charged[then.parent] -= then.used
    # never below zero: a child reaped just after its parent was read shows up one sample late
    return sum(max(0.0, seconds) for seconds in charged.values())


def _busy_seconds(times: dict[str, float]) -> float:
    """CPU seconds the machine spent working, summed over all CPUs (see UsageSampler for what counts).

    Takes psutil.cpu_times() as a dict because its fields differ per platform.
    """
    not_busy = ("idle", "iowait", "steal", "guest", "guest_nice")
    return sum(times.values()) - sum(times.get(name, 0.0) for name in not_busy)
