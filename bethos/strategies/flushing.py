"""Flush scheduling and bookkeeping shared by the strategies (SPEC section 4). No Flink here."""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from bethos.record import SCHEMA_VERSION


def stagger_offset(vin: str, interval_ms: int) -> int:
    """A stable per-VIN offset inside the interval (crc32: Python's hash() is salted)."""
    return zlib.crc32(vin.encode("utf-8")) % interval_ms


def flush_due(now_ms: int, interval_ms: int, offset_ms: int = 0) -> int:
    """The first time after `now` that is `offset` past a multiple of the interval."""
    return ((now_ms - offset_ms) // interval_ms + 1) * interval_ms + offset_ms


def expired(last_seen_ms: int | None, now_ms: int, ttl_ms: int | None) -> bool:
    """A VIN with no reading for `ttl` is emitted once as a tombstone and forgotten."""
    return ttl_ms is not None and last_seen_ms is not None and now_ms - last_seen_ms >= ttl_ms


@dataclass
class FlushSummary:
    """What one flush did, for the `event=flush` line and the metrics."""

    duration_ms: int
    vin_count: int
    message_count: int
    emitted: int


@dataclass
class FlushTracker:
    """Groups the per-VIN timers of one flush interval into one flush.

    Each VIN has exactly one pending flush timer, so the timers fired in one interval count the
    VINs held. Aligned timers fire in a burst; staggered ones spread over the interval.
    """

    interval_ms: int
    _bucket: int | None = None
    _started: float = 0.0
    _last: float = 0.0
    _vins: int = 0
    _messages: int = 0
    _emitted: int = 0
    last: FlushSummary | None = field(default=None)

    def on_timer(self, timestamp_ms: int) -> FlushSummary | None:
        """Account a fired timer; returns the previous flush when this one starts a new one."""
        bucket = (timestamp_ms - 1) // self.interval_ms
        finished = None
        if bucket != self._bucket:
            finished = self.finish()
            self._bucket, self._started = bucket, time.monotonic()
        self._vins += 1
        self._last = time.monotonic()
        return finished

    def on_emit(self, messages: int = 1) -> None:
        self._messages += messages
        self._emitted += 1

    def finish(self) -> FlushSummary | None:
        if not self._vins:
            return None
        summary = FlushSummary(
            int((self._last - self._started) * 1000), self._vins, self._messages, self._emitted
        )
        self.last = summary
        self._vins = self._messages = self._emitted = 0
        return summary


# Rows on their way to a buffered sink are spread over this many keys (see delivery_bucket).
DELIVERY_BUCKETS = 128


def delivery_bucket(vin: str, buckets: int = DELIVERY_BUCKETS) -> int:
    """The buffer a VIN's emissions go through: stable, so one VIN's emissions stay in order."""
    return zlib.crc32(vin.encode("utf-8")) % buckets


def tombstone_json(vin: str) -> bytes:
    """How a forgotten VIN appears where a message cannot be null (files, batches)."""
    return orjson.dumps({"schema": SCHEMA_VERSION, "vin": vin, "data": None})


def encode_batch(entries: Sequence[tuple[str, bytes | None]]) -> bytes:
    """One message of several VINs: a JSON array of latest records (tombstones as above)."""
    parts = [value if value is not None else tombstone_json(vin) for vin, value in entries]
    return b"[" + b",".join(parts) + b"]"
