"""CPU time of the stack's processes (Linux /proc), for the benchmarks: what one process or a
group of them used, and `CpuSampler`, which samples groups on a thread so that the CPU of a
span known only afterwards (the ETL's polls, found in its log) can be read back."""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# How `CpuSampler` names a thread's figure beside the groups'.
THREAD = "thread:"


def _cpu_ticks(stat: str) -> int:
    """User and system clock ticks from a `/proc/.../stat` line (after the name, which may hold
    spaces and parentheses)."""
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def process_cpu_s(pids: Sequence[int]) -> float:
    """CPU seconds (user and system) the processes have used so far; a process gone counts 0."""
    total = 0
    for pid in pids:
        try:
            total += _cpu_ticks(Path(f"/proc/{pid}/stat").read_text())
        except FileNotFoundError:
            continue
    return total / CLOCK_TICKS


def threads_cpu_s(pids: Sequence[int]) -> dict[str, float]:
    """CPU seconds so far of the processes' running threads, summed per thread name (the
    operating system's, cut to 15 bytes: `kafka-producer-`, `C2 CompilerThre`, a Flink task's
    name). A thread that has ended is no longer counted."""
    by_name: dict[str, float] = {}
    for pid in pids:
        tasks = Path(f"/proc/{pid}/task")
        for task in tasks.iterdir() if tasks.is_dir() else ():
            try:
                stat = (task / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            by_name[name] = by_name.get(name, 0.0) + _cpu_ticks(stat) / CLOCK_TICKS
    return by_name


def split_threads(cpu_s: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """A `CpuSampler.between` answer split in two: the groups' figures (and `machine`), and
    the threads' by name."""
    groups: dict[str, float] = {}
    threads: dict[str, float] = {}
    for name, seconds in cpu_s.items():
        if name.startswith(THREAD):
            threads[name.removeprefix(THREAD)] = seconds
        else:
            groups[name] = seconds
    return groups, threads


def machine_busy_s() -> float:
    """CPU seconds every process of the machine has used so far (all cores, idle and I/O wait
    left out)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


class CpuSampler:
    """Samples the CPU seconds of named groups of processes (and of the whole machine, as
    `machine`) every `period` seconds while it is entered; with `threads_of`, also those
    processes' threads per name, as `thread:<name>` (`split_threads` tells them apart)."""

    def __init__(
        self,
        groups: Mapping[str, Sequence[int]],
        period: float = 0.2,
        threads_of: Sequence[int] = (),
    ) -> None:
        self.groups = dict(groups)
        self.threads_of = list(threads_of)
        self.period = period
        self.times: list[float] = []
        self.samples: list[dict[str, float]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _sample(self) -> None:
        sample = {name: process_cpu_s(pids) for name, pids in self.groups.items()}
        sample["machine"] = machine_busy_s()
        for name, seconds in threads_cpu_s(self.threads_of).items():
            sample[THREAD + name] = seconds
        self.samples.append(sample)
        self.times.append(time.time())

    def _run(self) -> None:
        while not self.stopping.wait(self.period):
            self._sample()

    def __enter__(self) -> CpuSampler:
        self._sample()
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stopping.set()
        self.thread.join()
        self._sample()

    def between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds per group (and `machine`) from the last sample at or before `start` to
        the first at or after `end` (epoch seconds): the span, widened to whole samples."""
        first, last = self._bounds(start, end)
        before, after = self.samples[first], self.samples[last]
        # A thread started within the span has no figure before it.
        return {name: round(after[name] - before.get(name, 0.0), 2) for name in after}

    def span(self, start: float, end: float) -> float:
        """The wall seconds `between` covers for this span."""
        first, last = self._bounds(start, end)
        return self.times[last] - self.times[first]

    def _bounds(self, start: float, end: float) -> tuple[int, int]:
        """The samples around a span: the last at or before `start`, the first at or after
        `end` (the first and last samples when the span reaches past them)."""
        first = max(bisect.bisect_right(self.times, start) - 1, 0)
        last = min(bisect.bisect_left(self.times, end), len(self.times) - 1)
        return first, last
