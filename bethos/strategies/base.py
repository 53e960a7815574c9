"""What every latest-merger strategy's settings share (SPEC section 4)."""

from __future__ import annotations

from typing import Literal

from bethos.sections import DurationMs, Section


class MergerOptions(Section):
    """The `latest_merger` section: the strategy's name (`strategy`), the flush and the keys
    below; each strategy adds its own section."""

    strategy: str
    flush_interval: DurationMs = 120_000
    emit: Literal["changed", "all"] = "changed"
    # Spread the per-VIN flushes over the interval instead of one burst.
    stagger: bool = False
    # A VIN with no reading for this long is emitted once as a tombstone and forgotten.
    vin_ttl: DurationMs | None = None
    # A merger starting without state first loads the `latest` topic (SPEC section 6).
    bootstrap_from_latest: bool = True
