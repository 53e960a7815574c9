"""What a read of InfluxDB gives, for the connector that parses it and the source that plans it.

Part of the core's ground floor: connectors fill these types and import nothing else of the
source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bethos.merge_rule import value_order_key
from bethos.record import RowSignals, Signal, SignalValue


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open time range [start, end) in epoch milliseconds."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Tally:
    """Asks a read to count the values it finds per time bucket (`bucket_ms` wide, aligned to
    the epoch as InfluxDB's `GROUP BY time` is), of the points at or after `since_ms` only: a
    reconcile pass later compares these counts with InfluxDB's own."""

    bucket_ms: int
    since_ms: int


@dataclass(frozen=True, slots=True)
class Reject:
    """A row that cannot become a reading, for the dead-letter topic; `at` is the row's time
    (epoch ms)."""

    reason: str
    detail: str
    row: str
    at: int


def _newer(value: SignalValue, ts: int, current: Signal | None) -> bool:
    """Whether a reading supersedes the current one of its signal (ties: the value order)."""
    return current is None or (ts, value_order_key(value)) > (
        current.ts,
        value_order_key(current.value),
    )


# A VIN's newest signals: a dict of them, or the one row they were all read from.
VinSignals = dict[str, Signal] | RowSignals


@dataclass(slots=True)
class FetchResult:
    """What a read found, already reduced: per VIN, the newest reading of each signal.

    Keeping only the newest while parsing makes the read cost one small dict per VIN instead
    of one object per value (or, for a VIN read from one row, the row: `RowSignals`);
    `readings` still counts every value read. `counts`: the values read per bucket start
    (epoch ms), when the read was asked to keep a `Tally`.
    """

    latest: dict[str, VinSignals] = field(default_factory=dict)
    readings: int = 0
    rejects: list[Reject] = field(default_factory=list)
    counts: dict[int, int] = field(default_factory=dict)

    def signals_to_change(self, vin: str) -> dict[str, Signal]:
        """The VIN's signals as a dict to change: new when it has none, made from its row when
        it was read from one."""
        signals = self.latest.get(vin)
        if isinstance(signals, dict):
            return signals
        changeable = self.latest[vin] = {} if signals is None else signals.as_dict()
        return changeable

    def offer(self, vin: str, name: str, value: SignalValue, ts: int) -> None:
        """Keep the reading if it is the newest of its signal (ties: the value order)."""
        signals = self.signals_to_change(vin)
        if _newer(value, ts, signals.get(name)):
            signals[name] = Signal(value, ts)

    def merge(self, other: FetchResult) -> None:
        """Add another read's readings; `other` must not be used afterwards (its per-VIN dicts
        may be taken over as they are)."""
        if not self.latest:
            # The common case (a window read in one chunk): nothing to compare against.
            self.latest = other.latest
        else:
            for vin, signals in other.latest.items():
                if vin not in self.latest:
                    self.latest[vin] = signals
                    continue
                mine = self.signals_to_change(vin)
                for name, signal in signals.items():
                    if _newer(signal.value, signal.ts, mine.get(name)):
                        mine[name] = signal
        self.readings += other.readings
        self.rejects.extend(other.rejects)
        for bucket, count in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + count
