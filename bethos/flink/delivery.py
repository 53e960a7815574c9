"""Buffered delivery of the merger's emissions: to a store (`state_store`), in batches or to
lines (`inline`).

A flush fires one timer per VIN, so batching needs a buffer across timers. The buffer is keyed
list state (keyed by `delivery_bucket`), so a checkpoint or savepoint carries what is not yet
delivered, and a failed delivery keeps it and retries: nothing is lost between the merge and the
sink.
"""

from __future__ import annotations

import logging
import os
import random
import sys
from typing import Any

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, ProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from bethos.exceptions import StoreError
from bethos.flink.environment import ensure_logging
from bethos.flink.rows import KEYLESS
from bethos.logevents import log_event
from bethos.retry import backoff_delay
from bethos.strategies.flushing import encode_batch, tombstone_json
from bethos.strategies.inline import InlineSettings
from bethos.strategies.state_store import StateStoreSettings
from connectors.store import LatestStore, MemoryStore, open_store
from connectors.store.base import StoreEntry

log = logging.getLogger("bethos.latest_merger")
COMPONENT = "latest_merger"
MAX_RETRY_MS = 10_000

# One in-memory store per key prefix and process: with Flink's thread mode every job on a
# TaskManager shares one interpreter, so the publisher job sees what the merger wrote.
_MEMORY_STORES: dict[str, MemoryStore] = {}


def store_for(settings: StateStoreSettings) -> LatestStore:
    if settings.backend == "memory":
        return _MEMORY_STORES.setdefault(settings.key_prefix, MemoryStore())
    password = settings.password.get_secret_value() if settings.password else None
    return open_store("redis", settings.redis_url, settings.key_prefix, password)


class BufferedDelivery(KeyedProcessFunction):  # type: ignore[misc]
    """Keeps (vin, value) rows in list state; delivers them when `batch_size` are buffered or
    `linger` after the first one. A failed delivery is logged (`flush_error`) and retried with
    backoff, the rows kept."""

    def __init__(self, batch_size: int, linger_ms: int) -> None:
        self.batch_size = batch_size
        self.linger_ms = linger_ms

    def open(self, runtime_context: RuntimeContext) -> None:
        ensure_logging()
        self.buffer = runtime_context.get_list_state(
            ListStateDescriptor("buffer", Types.PICKLED_BYTE_ARRAY())
        )
        self.buffered = runtime_context.get_state(ValueStateDescriptor("buffered", Types.INT()))
        self.failures = runtime_context.get_state(ValueStateDescriptor("failures", Types.INT()))
        metrics = runtime_context.get_metrics_group()
        self.delivered = metrics.counter("delivered")
        self.flush_errors = metrics.counter("flush_errors")
        self.rng = random.Random()

    def deliver(self, entries: list[tuple[str, bytes | None]]) -> list[Row]:
        """Deliver one batch; return rows to emit downstream. Raise to retry later."""
        raise NotImplementedError

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        vin, text = value[0], value[1]
        self.buffer.add((vin, None if text is None else text.encode()))
        count = (self.buffered.value() or 0) + 1
        self.buffered.update(count)
        if count >= self.batch_size and not self.failures.value():
            yield from self._flush(ctx)
        elif count == 1:
            now = ctx.timer_service().current_processing_time()
            ctx.timer_service().register_processing_time_timer(now + self.linger_ms)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        if self.buffered.value():
            yield from self._flush(ctx)

    def _flush(self, ctx: Any):  # type: ignore[no-untyped-def]
        # Each value is a VIN's complete record: only the newest one per VIN matters, which
        # also bounds the buffer by the bucket's VINs during a long outage.
        newest: dict[str, bytes | None] = {}
        for vin, value in self.buffer.get() or []:
            newest.pop(vin, None)
            newest[vin] = value
        entries = list(newest.items())
        try:
            rows = []
            for start in range(0, len(entries), self.batch_size):
                rows.extend(self.deliver(entries[start : start + self.batch_size]))
        except (StoreError, OSError) as exc:
            failures = (self.failures.value() or 0) + 1
            self.failures.update(failures)
            self.flush_errors.inc()
            retry_in = backoff_delay(failures, self.linger_ms, MAX_RETRY_MS, self.rng)
            log_event(
                log,
                COMPONENT,
                "flush_error",
                logging.ERROR,
                err=str(exc),
                vin_count=len(entries),
                attempt=failures,
                retry_in_ms=retry_in,
            )
            self.buffer.update(entries)
            self.buffered.update(len(entries))
            now = ctx.timer_service().current_processing_time()
            ctx.timer_service().register_processing_time_timer(now + retry_in)
            return
        self.buffer.clear()
        self.buffered.clear()
        self.failures.clear()
        self.delivered.inc(len(entries))
        yield from rows


class StoreWriter(BufferedDelivery):
    """`state_store`: each batch is one atomic, pipelined write to the store."""

    def __init__(self, settings: StateStoreSettings) -> None:
        super().__init__(settings.batch_size, settings.linger)
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)
        self.store = store_for(self.settings)

    def close(self) -> None:
        if self.settings.backend != "memory":
            self.store.close()

    def deliver(self, entries: list[tuple[str, bytes | None]]) -> list[Row]:
        self.store.write([StoreEntry(vin, value) for vin, value in entries])
        return []


class BatchFunction(BufferedDelivery):
    """`inline` with `batch_size` > 1: one message per batch, a JSON array of records."""

    def __init__(self, settings: InlineSettings) -> None:
        super().__init__(settings.batch_size, settings.linger)

    def deliver(self, entries: list[tuple[str, bytes | None]]) -> list[Row]:
        return [Row(KEYLESS, encode_batch(entries).decode())]


class LineWriter(ProcessFunction):  # type: ignore[misc]
    """`inline` to stdout or a JSON-lines file: one message per line.

    Each line is one `write` on a file opened for appending, so parallel subtasks can share
    the file without tearing lines. A write error is logged and raised: Flink restarts from the
    last checkpoint and the lines are written again (at least once).
    """

    def __init__(self, settings: InlineSettings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        ensure_logging()
        if self.settings.sink == "stdout":
            self.fd = sys.stdout.fileno()
        else:
            self.fd = os.open(
                str(self.settings.path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
            )

    def close(self) -> None:
        if self.settings.sink == "file":
            os.close(self.fd)

    def process_element(self, value: Row, ctx: ProcessFunction.Context):  # type: ignore[no-untyped-def]
        key, text = value[0], value[1]
        line = (text.encode() if text is not None else tombstone_json(key)) + b"\n"
        try:
            written = os.write(self.fd, line)
            if written != len(line):
                raise OSError(f"short write: {written} of {len(line)} bytes")
        except OSError as exc:
            log_event(
                log, COMPONENT, "flush_error", logging.ERROR, err=str(exc), sink=self.settings.sink
            )
            raise
        return iter(())
