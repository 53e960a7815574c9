"""`window_stream`: event-time tumbling windows with allowed lateness; its
settings and per-VIN logic, free of Flink.

Each emission is the VIN's complete record as of its window's end, earlier windows included:
the latest topic is compacted, so consumers keep only the newest message per VIN, and a record
holding just one window's signals would hide the others. Records of still-open windows wait in
`pending`, so an emission never shows a signal from after its window's end.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar, Literal, NamedTuple

from pydantic import Field

from bethos.config import MergerOptions
from bethos.merge_rule import Candidate, VinState
from bethos.record import INT64_MAX, AggregatedRecord
from bethos.record_limits import RecordLimits, Refused, merge_bounded, merge_state_bounded
from bethos.sections import Broken, CheckedSection, DurationMs, Rule


class WindowSettings(CheckedSection):
    size: DurationMs = 120_000
    out_of_orderness: DurationMs = 10_000
    allowed_lateness: DurationMs = 0
    # A Kafka partition without records for this long stops holding the watermark back.
    idleness: DurationMs = 30_000

    def _window_timing(self) -> Iterator[Broken]:
        if self.size <= 0:
            yield Broken(("size",), "must be more than 0")
        if self.idleness <= 0:
            yield Broken(
                ("idleness",), "must be more than 0 (Flink's idleness detection refuses 0)"
            )

    rules: ClassVar[tuple[Rule, ...]] = (_window_timing,)


class WindowStream(MergerOptions):
    strategy: Literal["window_stream"] = "window_stream"
    window: WindowSettings = Field(default_factory=WindowSettings)

    def build(self) -> WindowLogic:
        return WindowLogic(self.window.size, self.window.allowed_lateness)


SavedVinState = tuple[dict[str, Candidate], str, int]
SavedWindowState = tuple[SavedVinState, dict[int, SavedVinState], bool]


def event_time(record: AggregatedRecord) -> int:
    """The newest signal `ts`; a record without signals falls back to its `received_at`."""
    return max((signal.ts for signal in record.signals.values()), default=record.received_at)


def window_end(ts: int, size_ms: int) -> int:
    """The exclusive end of the tumbling window that holds `ts`."""
    return (ts // size_ms) * size_ms + size_ms


def close_time(end: int) -> int:
    """The watermark at which the window ending at `end` closes: its last millisecond.

    Capped at the largest long so that a Flink timer can hold it; the final watermark of a
    bounded input is that value, so such a window still closes.
    """
    return min(end - 1, INT64_MAX)


class Verdict(Enum):
    PENDING = "pending"
    """Stored in `pending[end]`; the window's timer emits it."""
    LATE_EMIT = "late_emit"
    """Its window had closed but it is within the allowed lateness: merged into `closed`."""
    TOO_LATE = "too_late"
    """Rejected (dead letter reason `late`); the state is untouched."""


class Outcome(NamedTuple):
    verdict: Verdict
    end: int
    """The exclusive end of the record's window."""
    new_window: bool = False
    """PENDING only: first record of this window, so register an event-time timer at
    `close_time(end)`."""
    changed: bool = False
    """LATE_EMIT only: a signal of `closed` changed; when False, re-emitting would repeat the
    previous emission's signals."""


def _copy(state: VinState) -> VinState:
    return VinState(dict(state.signals), state.pod, state.received_at)


@dataclass(slots=True)
class WindowState:
    """What the `window_stream` merger keeps per VIN."""

    closed: VinState = field(default_factory=VinState)
    """The merge of every record whose window has closed, allowed late ones included."""
    pending: dict[int, VinState] = field(default_factory=dict)
    """Window end -> the merge of the records of that still-open window."""
    refused: list[Refused] = field(default_factory=list)
    """What `limits` kept out of `closed` since the caller last emptied it (never saved)."""
    emitted: bool = False
    """True once a record of the VIN was emitted: the latest topic's record may be this one."""

    def add(
        self,
        record: AggregatedRecord,
        watermark: int,
        size_ms: int,
        allowed_lateness_ms: int,
        limits: RecordLimits | None = None,
    ) -> Outcome:
        """Place one record given the current watermark (Long.MIN_VALUE before the first)."""
        end = window_end(event_time(record), size_ms)
        closes_at = close_time(end)
        # A window keeps taking records until its timer has closed it, even if the watermark
        # seen here is already past its close time.
        if watermark < closes_at or end in self.pending:
            window = self.pending.get(end)
            new_window = window is None
            if window is None:
                window = self.pending[end] = VinState()
            window.merge_record(record)
            return Outcome(Verdict.PENDING, end, new_window=new_window)
        if watermark < closes_at + allowed_lateness_ms:
            if limits is None:
                changed = self.closed.merge_record(record)
            else:
                changed, kept_out = merge_bounded(self.closed, record, limits)
                self.refused.extend(kept_out)
            self.emitted |= changed
            return Outcome(Verdict.LATE_EMIT, end, changed=changed)
        return Outcome(Verdict.TOO_LATE, end)

    def due(self, watermark: int) -> list[int]:
        """The ends, oldest first, of the pending windows that `watermark` closes."""
        return sorted(end for end in self.pending if close_time(end) <= watermark)

    def close(self, end: int, limits: RecordLimits | None = None, vin: str = "") -> VinState | None:
        """Close the window ending at `end`; return the emission, or None if it held nothing.
        With `limits`, `closed` stays within them (the VIN's name counts in its size)."""
        window = self.pending.pop(end, None)
        if window is None:
            return None
        if limits is None:
            self.closed.merge_state(window)
        else:
            self.refused.extend(merge_state_bounded(self.closed, vin, window, limits)[1])
        self.emitted = True
        return _copy(self.closed)

    def to_tuple(self) -> SavedWindowState:
        """The form kept in Flink state (pickled)."""
        pending = {end: window.to_tuple() for end, window in self.pending.items()}
        return (self.closed.to_tuple(), pending, self.emitted)

    @classmethod
    def from_tuple(
        cls, saved: SavedWindowState | tuple[SavedVinState, dict[int, SavedVinState]] | None
    ) -> WindowState:
        """A state from its saved form; one saved before `emitted` counts as emitted."""
        if saved is None:
            return cls()
        closed, pending, emitted = saved if len(saved) == 3 else (*saved, True)
        return cls(
            VinState.from_tuple(closed),
            {end: VinState.from_tuple(window) for end, window in pending.items()},
            emitted=emitted,
        )


@dataclass(frozen=True, slots=True)
class WindowLogic:
    """The per-VIN windows of `size` with `allowed_lateness`, over a VIN's `WindowState`: where a
    record goes, which windows a watermark closes, and what each closing emits. (The watermarks'
    out-of-orderness and idleness are the Flink wiring's.)"""

    size_ms: int
    allowed_lateness_ms: int = 0
    # Bounds on the emitted record; what they keep out is left in `WindowState.refused`.
    limits: RecordLimits | None = None

    def place(self, state: WindowState, record: AggregatedRecord, watermark: int) -> Outcome:
        """Place one record given the current watermark (Long.MIN_VALUE before the first)."""
        return state.add(record, watermark, self.size_ms, self.allowed_lateness_ms, self.limits)

    @staticmethod
    def load(state: WindowState, record: AggregatedRecord) -> bool:
        """A record of the `latest` topic read at a stateless start: state, not an event.
        True when `closed` is to be emitted again: both topics are read at once, so the VIN
        may have been emitted before, without what this record adds."""
        return state.closed.merge_record(record) and state.emitted

    def on_watermark(self, state: WindowState, watermark: int, vin: str = "") -> list[VinState]:
        """Close every pending window the watermark has reached, oldest first; each closing
        emits the VIN's complete record as of that window's end."""
        emissions = []
        for end in state.due(watermark):
            emission = state.close(end, self.limits, vin)
            if emission is not None:
                emissions.append(emission)
        return emissions

    def too_late(self, end: int, watermark: int) -> str:
        """The dead letter's detail for a record past its window's allowed lateness."""
        return (
            f"window ending {end} closed; watermark {watermark} is past its allowed lateness "
            f"of {self.allowed_lateness_ms} ms"
        )
