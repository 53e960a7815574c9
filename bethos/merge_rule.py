"""The merge rule (docs/CONTRACT.md): per signal, last writer wins by event time.

For each signal the state keeps the candidate with the larger `ts`; on equal `ts` the larger
`received_at`; on equal again the larger value in a fixed total order (type rank, then value).
Choosing the maximum of a total order makes the merge commutative, associative and idempotent.
"""

from __future__ import annotations

import marshal
from dataclasses import dataclass, field
from typing import Any

from bethos.record import AggregatedRecord, Signal, SignalValue, encode_latest

# (value, ts, received_at): the smallest form that keeps state small and pickles fast.
Candidate = tuple[SignalValue, int, int]


def value_order_key(value: SignalValue) -> tuple[int, SignalValue, int]:
    """A total order over signal values: booleans < numbers < strings.

    Among equal numbers an int sorts before a float (1 < 1.0) so that the order stays total.
    """
    if isinstance(value, bool):
        return (0, value, 0)
    if isinstance(value, int):
        return (1, value, 0)
    if isinstance(value, float):
        return (1, value, 1)
    return (2, value, 0)


def candidate_key(candidate: Candidate) -> tuple[int, int, tuple[int, SignalValue, int]]:
    value, ts, received_at = candidate
    return (ts, received_at, value_order_key(value))


def newer(a: Candidate, b: Candidate) -> Candidate:
    """The candidate that wins the merge rule."""
    return b if candidate_key(b) > candidate_key(a) else a


@dataclass(slots=True)
class VinState:
    """Everything the merger keeps per VIN."""

    signals: dict[str, Candidate] = field(default_factory=dict)
    pod: str = ""
    received_at: int = 0

    def merge_record(self, record: AggregatedRecord) -> bool:
        """Merge one record; return True when any signal changed."""
        changed = False
        signals = self.signals
        received_at = record.received_at
        for name, (value, ts) in record.signals.items():
            incoming: Candidate = (value, ts, received_at)
            current = signals.get(name)
            # A later ts wins outright (the key's first part); only a tie needs the whole key.
            if (
                current is None
                or ts > current[1]
                or (ts == current[1] and candidate_key(incoming) > candidate_key(current))
            ):
                signals[name] = incoming
                changed = True
        if (record.received_at, record.pod) > (self.received_at, self.pod):
            self.received_at, self.pod = record.received_at, record.pod
        return changed

    def merge_state(self, other: VinState) -> None:
        for name, incoming in other.signals.items():
            current = self.signals.get(name)
            self.signals[name] = incoming if current is None else newer(current, incoming)
        if (other.received_at, other.pod) > (self.received_at, self.pod):
            self.received_at, self.pod = other.received_at, other.pod

    def latest_signals(self) -> dict[str, Signal]:
        return {name: Signal(c[0], c[1]) for name, c in self.signals.items()}

    def encode_latest(self, vin: str, produced_at: int) -> bytes:
        """The VIN's latest record: every signal known."""
        return encode_latest(vin, self.signals, self.pod, self.received_at, produced_at)

    def to_tuple(self) -> tuple[dict[str, Candidate], str, int]:
        """The form kept in Flink state (pickled)."""
        return (self.signals, self.pod, self.received_at)

    @classmethod
    def from_tuple(cls, saved: tuple[dict[str, Candidate], str, int] | None) -> VinState:
        if saved is None:
            return cls()
        signals, pod, received_at = saved
        return cls(dict(signals), pod, received_at)


SavedEntry = tuple[dict[str, Candidate], str, int, bool, int | None, int | None, int, bool]

# An entry is kept in Flink state as `marshal` bytes, in this format version, pinned: a newer
# Python reads every older version, and writing one fixed version keeps what a savepoint holds
# independent of the Python that wrote it. About twice as fast as pickling the same tuple, both
# ways, and about as large (timed side by side with timeit); bytes are what PyFlink passes to
# state cheapest.
STATE_FORMAT = 4


@dataclass(slots=True)
class Entry:
    """What the merger keeps per VIN: the merged state and its flush bookkeeping."""

    state: VinState
    # True when a signal changed since the VIN's last emission.
    dirty: bool = False
    # When the VIN's pending flush timer fires.
    next_flush: int | None = None
    # Processing time of the VIN's newest record (for `vin_ttl`).
    last_seen: int | None = None
    # The census period the VIN was last counted in (`bethos.strategies.flushing.Census`).
    census: int = -1
    # True once a record of the aggregated topic was merged in; False while only the latest
    # topic, read at a stateless start, has fed it.
    merged_input: bool = False

    def saved(self) -> bytes:
        """The form kept in Flink state: plain tuples and dicts, marshalled."""
        state = self.state
        fields: SavedEntry = (
            state.signals,
            state.pod,
            state.received_at,
            self.dirty,
            self.next_flush,
            self.last_seen,
            self.census,
            self.merged_input,
        )
        return marshal.dumps(fields, STATE_FORMAT)

    @classmethod
    def load(cls, saved: bytes | tuple[object, ...] | None) -> Entry:
        """An entry from state: bytes, or the tuple an earlier release pickled (6 fields
        before the census, 7 before `merged_input`: its entries were fed by the input)."""
        if saved is None:
            return cls(VinState())
        fields: Any = marshal.loads(saved) if type(saved) is bytes else saved
        if len(fields) == 6:
            fields = (*fields, -1)
        if len(fields) == 7:
            fields = (*fields, True)
        signals, pod, received_at, dirty, next_flush, last_seen, census, merged_input = fields
        return cls(
            VinState(signals, pod, received_at), dirty, next_flush, last_seen, census, merged_input
        )
