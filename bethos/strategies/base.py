"""What every latest-merger strategy's settings share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

from bethos.sections import Broken, CheckedSection, DurationMs, Rule
from bethos.strategies.flushing import FlushLogic


class MergerOptions(CheckedSection):
    """The `latest_merger` section: the strategy's name (`strategy`), the flush and the keys
    below; each strategy adds its own section and a `build()` returning its logic."""

    strategy: str
    flush_interval: DurationMs = 120_000
    emit: Literal["changed", "all"] = "changed"
    # Spread the per-VIN flushes over the interval instead of one burst.
    stagger: bool = False
    # A VIN with no reading for this long is emitted once as a tombstone and forgotten.
    vin_ttl: DurationMs | None = None
    # A merger starting without state first loads the `latest` topic.
    bootstrap_from_latest: bool = True

    # A zero interval or time to live would fail the job after it started.
    def _flush_timing(self) -> Iterator[Broken]:
        if self.flush_interval <= 0:
            yield Broken(("flush_interval",), "must be more than 0")
        if self.vin_ttl is not None and self.vin_ttl <= 0:
            yield Broken(("vin_ttl",), "must be more than 0 when set")

    rules: ClassVar[tuple[Rule, ...]] = (_flush_timing,)

    def build(self) -> object:
        """The strategy's logic, free of Flink (each strategy narrows the type)."""
        raise NotImplementedError(f"strategy {self.strategy!r} has no build()")

    def flush_logic(self) -> FlushLogic:
        """The per-VIN flush these keys describe."""
        return FlushLogic(
            interval_ms=self.flush_interval,
            emit_all=self.emit == "all",
            stagger=self.stagger,
            ttl_ms=self.vin_ttl,
        )
