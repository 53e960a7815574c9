"""Runs a keyed Python function in plain Python: keyed value and list state, processing-time
timers and metrics, the way Flink calls them (no JVM). For the Flink adapters' own behaviour;
the graphs themselves are compiled in test_job_graphs.py."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def inc(self, n: int = 1) -> None:
        self.count += n

    def dec(self, n: int = 1) -> None:
        self.count -= n


class Metrics:
    def __init__(self) -> None:
        self.counters: dict[str, Counter] = {}

    def counter(self, name: str) -> Counter:
        return self.counters.setdefault(name, Counter())

    def add_group(self, name: str, extra: str | None = None) -> Metrics:
        """A group's counters are named `<name>.<extra>.<counter>` here."""
        group = Metrics()
        group.counters = _Prefixed(self.counters, f"{name}.{extra}." if extra else f"{name}.")
        return group

    def gauge(self, name: str, read: Any) -> None:
        raise AssertionError(f"gauge {name!r}: a Python gauge can crash a TaskManager")


class _Prefixed(dict):  # type: ignore[type-arg]
    """A view of the parent's counters under a prefix."""

    def __init__(self, parent: dict[str, Counter], prefix: str) -> None:
        super().__init__()
        self.parent, self.prefix = parent, prefix

    def setdefault(self, name: str, default: Counter) -> Counter:  # type: ignore[override]
        return self.parent.setdefault(self.prefix + name, default)


class ValueState:
    def __init__(self, harness: Harness, name: str) -> None:
        self.harness, self.name = harness, name

    def value(self) -> Any:
        return self.harness.state.get((self.name, self.harness.key))

    def update(self, value: Any) -> None:
        self.harness.state[(self.name, self.harness.key)] = value

    def clear(self) -> None:
        self.harness.state.pop((self.name, self.harness.key), None)


class ListState(ValueState):
    def get(self) -> list[Any]:
        return list(self.value() or [])

    def add(self, value: Any) -> None:
        self.update([*self.get(), value])


class RuntimeContext:
    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.metrics = Metrics()

    def get_state(self, descriptor: Any) -> ValueState:
        return ValueState(self.harness, descriptor.name)

    def get_list_state(self, descriptor: Any) -> ListState:
        return ListState(self.harness, descriptor.name)

    def get_metrics_group(self) -> Metrics:
        return self.metrics


class TimerService:
    def __init__(self, harness: Harness) -> None:
        self.harness = harness

    def current_processing_time(self) -> int:
        return self.harness.now

    def current_watermark(self) -> int:
        return -(2**63)

    def register_processing_time_timer(self, timestamp: int) -> None:
        # Flink keeps one timer per key and timestamp.
        timer = (timestamp, self.harness.key)
        if timer not in self.harness.timers:
            heapq.heappush(self.harness.timers, timer)


class Context:
    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.service = TimerService(harness)

    def get_current_key(self) -> Any:
        return self.harness.key

    def timer_service(self) -> TimerService:
        return self.service


class Harness:
    """One keyed function; `output` collects what it yields (side outputs as (tag, row))."""

    def __init__(self, function: Any, now: int = 0) -> None:
        self.function = function
        self.now = now
        self.key: Any = None
        self.state: dict[tuple[str, Any], Any] = {}
        self.timers: list[tuple[int, Any]] = []
        self.output: list[Any] = []
        self.context = RuntimeContext(self)
        function.open(self.context)

    @property
    def counters(self) -> dict[str, Counter]:
        return self.context.metrics.counters

    def element(self, key: Any, value: Any) -> None:
        self.key = key
        self._collect(self.function.process_element(value, Context(self)))

    def advance(self, now: int) -> None:
        """Move processing time to `now`, firing every timer due, in order."""
        while self.timers and self.timers[0][0] <= now:
            timestamp, self.key = heapq.heappop(self.timers)
            self.now = max(self.now, timestamp)
            self._collect(self.function.on_timer(timestamp, Context(self)))
        self.now = now

    def close(self) -> None:
        self.function.close()

    def _collect(self, produced: Iterable[Any] | None) -> None:
        self.output.extend(produced or [])
