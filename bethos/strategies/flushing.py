"""The per-VIN flush that `log_compacted`, `inline` and `state_store` share, its bookkeeping and
the buffered delivery behind `inline` batches and store writes. No Flink here:
the Flink functions call these with the record, the VIN's `Entry` and the time.
"""

from __future__ import annotations

import heapq
import random
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from bethos.config import MergerOptions
from bethos.merge_rule import Entry
from bethos.record import SCHEMA_VERSION, newest_ts
from bethos.retry import backoff_delay

# Staggered flushes fall on about this many instants of the interval, not on any millisecond.
# Flink wakes the task once per distinct timer instant (its timer thread hands the task a mail),
# and with a VIN or two an instant a staggered flush took about 1.7 times the CPU
# (docs/DECISIONS.md). The VINs of one instant fire in one go, still short (1M VINs: ~1.7k a go,
# under 0.1 s).
STAGGER_SLOTS = 600


def stagger_offset(vin: str, interval_ms: int) -> int:
    """A stable per-VIN offset inside the interval, on a multiple of `interval / STAGGER_SLOTS`
    (whole ms; crc32: Python's hash() is salted)."""
    step = max(1, interval_ms // STAGGER_SLOTS)
    return zlib.crc32(vin.encode("utf-8")) % interval_ms // step * step


def flush_due(now_ms: int, interval_ms: int, offset_ms: int = 0) -> int:
    """The first time after `now` that is `offset` past a multiple of the interval."""
    return ((now_ms - offset_ms) // interval_ms + 1) * interval_ms + offset_ms


def expired(last_seen_ms: int | None, now_ms: int, ttl_ms: int | None) -> bool:
    """A VIN with no reading for `ttl` is emitted once as a tombstone and forgotten."""
    return ttl_ms is not None and last_seen_ms is not None and now_ms - last_seen_ms >= ttl_ms


class Flushed(NamedTuple):
    """What a VIN's flush timer does."""

    value: bytes | None
    """The VIN's latest record to emit; None when there is nothing to emit."""
    expired: bool = False
    """Emit a tombstone and forget the VIN: no record, no next timer."""


NOTHING = Flushed(None)
EXPIRED = Flushed(None, expired=True)


# A VIN with nothing to emit still gets one timer every this many flush intervals: its census
# (`Census`), which counts the VINs held and checks `vin_ttl`.
CENSUS_EVERY = 5


@dataclass(frozen=True, slots=True)
class FlushLogic:
    """The per-VIN flush decisions. A VIN's timer is pending only when it has something to emit
    at its next flush slot (`emit: changed`: a signal changed since its last emission; `emit:
    all`: always); when it fires, the VIN's latest record is emitted, or after `vin_ttl` without
    a reading a tombstone. A VIN with nothing to emit has one timer per census period instead,
    at its own offset: its census, and its expiry with `vin_ttl`. `entry.next_flush` is the
    timer the VIN acts on; any other timer of the VIN (one overtaken by an earlier flush slot)
    does nothing when it fires."""

    interval_ms: int
    emit_all: bool = False
    stagger: bool = False
    ttl_ms: int | None = None
    silence_thresholds_ms: tuple[int, ...] = ()

    @classmethod
    def of(cls, options: MergerOptions) -> FlushLogic:
        """The per-VIN flush that the `latest_merger` keys every strategy shares describe."""
        return cls(
            interval_ms=options.flush_interval,
            emit_all=options.emit == "all",
            stagger=options.stagger,
            ttl_ms=options.vin_ttl,
            silence_thresholds_ms=tuple(options.silence_thresholds),
        )

    @property
    def census_ms(self) -> int:
        return self.interval_ms * CENSUS_EVERY

    def flush_slot(self, vin: str, now_ms: int) -> int:
        """The VIN's next flush slot after `now`."""
        offset = stagger_offset(vin, self.interval_ms) if self.stagger else 0
        return flush_due(now_ms, self.interval_ms, offset)

    def idle_due(self, vin: str, now_ms: int, last_seen_ms: int | None) -> int:
        """The timer of a VIN with nothing to emit: its next census slot (always staggered:
        nothing waits on it), or its expiry if that comes first."""
        due = flush_due(now_ms, self.census_ms, stagger_offset(vin, self.census_ms))
        if self.ttl_ms is not None and last_seen_ms is not None:
            due = min(due, max(last_seen_ms + self.ttl_ms, now_ms + 1))
        return due

    def on_record(self, entry: Entry, vin: str, now_ms: int, changed: bool) -> int | None:
        """Bookkeeping for a record merged into `entry` (`changed`: a signal changed): the
        time of a timer to register, or None when the pending one comes soon enough. Per
        record: keep it cheap."""
        if self.ttl_ms is not None:
            entry.last_seen = now_ms
        pending = entry.next_flush
        # A flush timer is pending (the VIN's next flush slot, or an earlier one) when the VIN
        # was already to be emitted.
        flush_pending = pending is not None and (entry.dirty or self.emit_all)
        if changed:
            entry.dirty = True
        if flush_pending:
            return None
        if entry.dirty or self.emit_all:
            due = self.flush_slot(vin, now_ms)
        elif pending is None:
            due = self.idle_due(vin, now_ms, entry.last_seen)
        else:
            return None
        if pending is not None and pending <= due:
            return None
        entry.next_flush = due
        return due

    def on_timer(self, entry: Entry, vin: str, timestamp_ms: int, now_ms: int) -> Flushed:
        """The VIN's timer fired at `timestamp`. Unless the VIN expired, `entry.next_flush` is
        the next timer to register and `entry` is to be saved; an expired VIN is forgotten."""
        if expired(entry.last_seen, timestamp_ms, self.ttl_ms):
            return EXPIRED
        flushed = NOTHING
        if self.emit_all or entry.dirty:
            flushed = Flushed(entry.state.encode_latest(vin, produced_at=now_ms))
            entry.dirty = False
        if self.emit_all:
            entry.next_flush = timestamp_ms + self.interval_ms
        else:
            entry.next_flush = self.idle_due(vin, timestamp_ms, entry.last_seen)
        return flushed


@dataclass(frozen=True)
class CensusCount:
    """What one census period counted."""

    held: int
    """VINs in state."""
    silent: tuple[int, ...]
    """Per silence threshold (ascending): VINs whose newest reading (the newest signal `ts`)
    was at least that long before their census timer."""
    most_silent: tuple[tuple[str, int], ...]
    """The longest-silent VINs, (VIN, silence in ms), longest first."""


@dataclass
class Census:
    """Counts the VINs held and how long each has been silent: every VIN's timer fires at
    least once per census period (`CENSUS_EVERY` flush intervals), and the first of its timers
    in a period counts it (`Entry.census` keeps the period it was counted in). `on_timer`
    returns the count of the period that ended when the first timer of the next one fires.
    It lives in memory: the period under way at a restore counts only the VINs not counted
    before it."""

    period_ms: int
    thresholds_ms: tuple[int, ...] = ()
    keep: int = 5
    """How many of the longest-silent VINs a count names."""
    _period: int | None = None
    _count: int = 0
    _silent: list[int] = field(default_factory=list)
    _most: list[tuple[int, str]] = field(default_factory=list)

    def on_timer(
        self, entry: Entry, vin: str, timestamp_ms: int, now_ms: int
    ) -> CensusCount | None:
        period = (timestamp_ms - 1) // self.period_ms
        finished = None
        if period != self._period:
            if self._period is not None and period > self._period:
                finished = self.count()
            self._period, self._count = period, 0
            self._silent, self._most = [0] * len(self.thresholds_ms), []
        if entry.census != period:
            entry.census = period
            self._count += 1
            signals = entry.state.signals
            if signals:
                self._note_silence(vin, now_ms - newest_ts(signals))
        return finished

    def _note_silence(self, vin: str, silence_ms: int) -> None:
        for index, threshold in enumerate(self.thresholds_ms):
            if silence_ms < threshold:
                break
            self._silent[index] += 1
        if len(self._most) < self.keep:
            heapq.heappush(self._most, (silence_ms, vin))
        elif self.keep and silence_ms > self._most[0][0]:
            heapq.heapreplace(self._most, (silence_ms, vin))

    def count(self) -> CensusCount:
        most = sorted(self._most, reverse=True)
        return CensusCount(self._count, tuple(self._silent), tuple((vin, ms) for ms, vin in most))


@dataclass
class FlushSummary:
    """What one flush did, for the `event=flush` line and the metrics."""

    duration_ms: int
    vin_count: int | None
    """VINs whose timer fired; None where the operator holds no VINs (the inline batcher)."""
    message_count: int | None
    """Messages sent; None where they are formed downstream (inline batches)."""
    emitted: int
    """Latest records emitted (tombstones are messages, not records)."""
    longest_run_ms: int = 0
    """The longest time the operator spent in timer callbacks in one go, reading no input
    (`TimerRuns`)."""

    def fields(self) -> dict[str, int]:
        """The line's fields, leaving out what this operator cannot know."""
        fields = {"flush_duration_ms": self.duration_ms}
        if self.vin_count is not None:
            fields["vin_count"] = self.vin_count
        if self.message_count is not None:
            fields["message_count"] = self.message_count
        fields["emitted"] = self.emitted
        if self.vin_count is not None:
            # Only an operator whose timers flush VINs runs timers in goes.
            fields["longest_timer_run_ms"] = self.longest_run_ms
        return fields


@dataclass
class TimerRuns:
    """The longest stretch of timer callbacks run in one go: Flink's timer service fires every
    processing-time timer due at its time in one loop (`InternalTimerServiceImpl
    .onProcessingTime`), during which the task reads no input and passes no checkpoint barrier.
    A go fires the timers of one timestamp (and any earlier one still due), so a callback whose
    timer is later than the go's, or that follows a record read, starts the next go. Measured
    from the first callback's start to the last one's."""

    _first: float = 0.0
    _go_timestamp: int | None = None
    longest_s: float = 0.0

    def on_timer(self, timestamp_ms: int, now_s: float) -> None:
        if self._go_timestamp is None or timestamp_ms > self._go_timestamp:
            self._first, self._go_timestamp = now_s, timestamp_ms
        elif now_s - self._first > self.longest_s:
            self.longest_s = now_s - self._first

    def on_input(self) -> None:
        self._go_timestamp = None

    def take_ms(self) -> int:
        """The longest go since the last call, in ms; starts over."""
        longest, self.longest_s = self.longest_s, 0.0
        return round(longest * 1000)


class FlushTurn(NamedTuple):
    """What a fired timer means to the flush bookkeeping."""

    finished: FlushSummary | None
    """A flush whose line is due now: its closing timer was lost (a restore, a rescale)."""
    close_at: int | None
    """A new flush started: the time of the timer that closes it (`FlushTracker.close_at`)."""


NO_TURN = FlushTurn(None, None)


@dataclass
class FlushTracker:
    """Groups the events of one flush interval into one flush.

    A flush is delimited by processing time: the timers in (k * interval, (k + 1) * interval]
    are one flush (aligned timers fire at its end in a burst, staggered ones spread over it).
    The merge calls `on_timer` for each VIN's timer (each VIN has exactly one pending, so the
    timers fired in one interval count the VINs held) and `on_emit` / `on_tombstone` for what
    it emits. When a flush starts, `on_timer` asks for one more timer just after the flush's
    end; when it fires, `on_closing_timer` returns the flush for its line. Timers fire in time
    order, so every timer of the flush has fired by then. The tracker lives in memory: if the
    closing timer is lost (it moved to another subtask, or the job restarted), the next flush's
    first timer returns the summary instead, one interval late. An operator that sends
    messages formed from several VINs (the inline batcher) calls `on_delivery` instead.
    """

    interval_ms: int
    counts_vins: bool = True
    counts_messages: bool = True
    _bucket: int | None = None
    _started: float = 0.0
    _last: float = 0.0
    _events: int = 0
    _vins: int = 0
    _messages: int = 0
    _emitted: int = 0
    last: FlushSummary | None = field(default=None)
    last_at_ms: int = 0
    """Epoch ms at which the newest finished flush's last timer ran; 0 before the first."""
    runs: TimerRuns = field(default_factory=TimerRuns)

    def close_at(self, timestamp_ms: int) -> int:
        """The closing timer of the flush of `timestamp`: 1 ms after the flush's end (for
        aligned timers, 1 ms after the timer itself)."""
        return ((timestamp_ms - 1) // self.interval_ms + 1) * self.interval_ms + 1

    def roll(self, timestamp_ms: int) -> FlushTurn:
        """Move to the flush of `timestamp`: when that starts a new one, the previous one's
        summary if its line is still due, and when to close the new one."""
        bucket = (timestamp_ms - 1) // self.interval_ms
        if bucket == self._bucket:
            return NO_TURN
        finished = self.finish()
        self._bucket, self._started = bucket, time.monotonic()
        return FlushTurn(finished, self.close_at(timestamp_ms))

    def on_timer(self, timestamp_ms: int) -> FlushTurn:
        """Account a VIN's fired timer. Per timer: keep it cheap."""
        turn = self.roll(timestamp_ms)
        self._events += 1
        self._vins += 1
        self._last = now = time.monotonic()
        self.runs.on_timer(timestamp_ms, now)
        return turn

    def on_input(self) -> None:
        """A record read: the timer callbacks before it and after it are not one go."""
        self.runs.on_input()

    def on_closing_timer(self, timestamp_ms: int) -> FlushSummary | None:
        """A timer that is no VIN's fired: if it closes the flush under way, its summary; None
        when it closes none (a timer left behind by a forgotten VIN) or that flush's line was
        written already (another subtask's or an earlier run's closing timer)."""
        interval = self.interval_ms
        if timestamp_ms % interval != 1 or (timestamp_ms - 2) // interval != self._bucket:
            return None
        return self.finish()

    def on_emit(self) -> None:
        """A latest record emitted: one message unless a downstream batcher forms them."""
        self._messages += 1
        self._emitted += 1

    def on_tombstone(self) -> None:
        self._messages += 1

    def on_delivery(self, timestamp_ms: int, emitted: int, messages: int) -> FlushTurn:
        """Messages sent at `timestamp`, holding `emitted` latest records."""
        turn = self.roll(timestamp_ms)
        self._events += 1
        self._messages += messages
        self._emitted += emitted
        self._last = time.monotonic()
        return turn

    def finish(self) -> FlushSummary | None:
        """End the flush under way: its summary, or None if nothing happened in it."""
        if not self._events:
            return None
        summary = self._summary(int((self._last - self._started) * 1000))
        self.last = summary
        self.last_at_ms = int((time.time() - (time.monotonic() - self._last)) * 1000)
        self._events = self._vins = self._messages = self._emitted = 0
        return summary

    def empty(self) -> FlushSummary:
        """The summary of a flush that did nothing (a stop between two flushes)."""
        return self._summary(0)

    def _summary(self, duration_ms: int) -> FlushSummary:
        return FlushSummary(
            duration_ms,
            self._vins if self.counts_vins else None,
            self._messages if self.counts_messages else None,
            self._emitted,
            self.runs.take_ms(),
        )


# Rows on their way to a buffered sink are spread over this many keys (see delivery_bucket).
DELIVERY_BUCKETS = 128

# (VIN, its latest record or None for a tombstone): what a buffered sink holds and delivers.
Pending = tuple[str, bytes | None]


def delivery_bucket(vin: str, buckets: int = DELIVERY_BUCKETS) -> int:
    """The buffer a VIN's emissions go through: stable, so one VIN's emissions stay in order."""
    return zlib.crc32(vin.encode("utf-8")) % buckets


@dataclass(frozen=True, slots=True)
class DeliveryPlan:
    """Buffered delivery: up to `batch_size` VINs per delivery, `linger` after the first one
    buffered at the latest; a failed delivery keeps the buffer and is retried with backoff."""

    batch_size: int
    linger_ms: int
    max_retry_ms: int = 10_000

    def full(self, buffered: int) -> bool:
        return buffered >= self.batch_size

    def pending(self, buffered: Iterable[Pending]) -> list[Pending]:
        """What to deliver: each value is a VIN's complete record, so only the newest one per
        VIN matters (which also bounds the buffer by the bucket's VINs during an outage)."""
        newest: dict[str, bytes | None] = {}
        for vin, value in buffered:
            newest.pop(vin, None)
            newest[vin] = value
        return list(newest.items())

    def batches(self, entries: Sequence[Pending]) -> list[Sequence[Pending]]:
        """The deliveries: consecutive slices of at most `batch_size` entries."""
        size = self.batch_size
        return [entries[start : start + size] for start in range(0, len(entries), size)]

    def retry_in(self, failures: int, rng: random.Random) -> int:
        return backoff_delay(failures, self.linger_ms, self.max_retry_ms, rng)


def tombstone_json(vin: str) -> bytes:
    """How a forgotten VIN appears where a message cannot be null (files, batches)."""
    return orjson.dumps({"schema": SCHEMA_VERSION, "vin": vin, "data": None})


def encode_batch(entries: Sequence[Pending]) -> bytes:
    """One message of several VINs: a JSON array of latest records (tombstones as above)."""
    parts = [value if value is not None else tombstone_json(vin) for vin, value in entries]
    return b"[" + b",".join(parts) + b"]"
