"""The latest merger's keyed merge with its timer flush (`MergeFunction`, uid
`latest-merger-merge`), shared by `log_compacted`, `inline` and `state_store`; the dead letter
of what a limit kept out (`refused_letter`) and the merger's `event=flush` and
`event=shutdown_flush` lines. `bethos_flink.merger_graph.MergerGraph` puts it in the graph."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from pyflink.common import Row, RowKind, Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from bethos.deadletter import dead_letter
from bethos.durations import format_duration_ms
from bethos.exceptions import DeadLettered
from bethos.logevents import log_event
from bethos.merge_rule import Entry
from bethos.record import AggregatedRecord, encode_aggregated
from bethos.record_limits import RecordLimits, Refused, merge_bounded
from bethos.strategies.flushing import (
    NO_TURN,
    Census,
    CensusCount,
    FlushLogic,
    FlushSummary,
    FlushTracker,
)
from bethos_flink.environment import ensure_logging
from bethos_flink.rows import (
    ORIGIN_LATEST,
    ROW_DEAD_LETTER,
    BatchedCounter,
    CounterGauge,
    Intake,
)

log = logging.getLogger("bethos.latest_merger")
COMPONENT = "latest_merger"
MERGE_UID = "latest-merger-merge"
DEAD_LETTERS = OutputTag("dead-letters", ROW_DEAD_LETTER)


class MergeFunction(KeyedProcessFunction):  # type: ignore[misc]
    """Merges each record into the VIN's state; a processing-time timer flushes it
    (`FlushLogic` decides what each timer emits)."""

    def __init__(
        self,
        flush: FlushLogic,
        tombstones_as_delete: bool = True,
        messages_downstream: bool = False,
        limits: RecordLimits | None = None,
    ) -> None:
        self.flush = flush
        self.limits = limits or RecordLimits()
        # An upsert sink needs a DELETE row; buffered sinks take a null value.
        self.tombstones_as_delete = tombstones_as_delete
        # When a later operator forms the messages (inline batches), this one cannot count
        # them: its `event=flush` line leaves `message_count` to that operator's line.
        self.messages_downstream = messages_downstream

    def open(self, runtime_context: RuntimeContext) -> None:
        ensure_logging()
        # Everything about a VIN in one value (see Entry): one state read and one write per
        # record, instead of one per field.
        self.entry = runtime_context.get_state(
            ValueStateDescriptor("vin_entry", Types.PICKLED_BYTE_ARRAY())
        )
        metrics = runtime_context.get_metrics_group()
        self.records_in = BatchedCounter(metrics.counter("records_in"))
        self.merged = BatchedCounter(metrics.counter("merged"))
        self.intake = Intake(metrics, log, COMPONENT, keyed_by_message=True)
        self.emitted = BatchedCounter(metrics.counter("emitted"))
        self.expired = metrics.counter("expired")
        self.limited = metrics.counter("signals_refused")
        self.loaded = BatchedCounter(metrics.counter("loaded_from_latest"))
        self.batched = (self.records_in, self.merged, self.emitted, self.loaded)
        self.flushes = FlushTracker(
            self.flush.interval_ms, counts_messages=not self.messages_downstream
        )
        self.census = Census(self.flush.census_ms, self.flush.silence_thresholds_ms)
        # Set when a census period ends.
        self.vins_held = CounterGauge(metrics.counter("vins_held"))
        self.silence_labels = [format_duration_ms(t) for t in self.flush.silence_thresholds_ms]
        # One series per threshold: `vins_silent` under the label `silent_for`.
        self.vins_silent = []
        for label in self.silence_labels:
            threshold = metrics.add_group("silent_for", label)
            self.vins_silent.append(CounterGauge(threshold.counter("vins_silent")))
        # Set when a flush ends (`_flush_done`).
        self.last_flush_duration = CounterGauge(metrics.counter("last_flush_duration_ms"))
        self.last_flush_at = CounterGauge(metrics.counter("last_flush_at_ms"))
        self.longest_timer_run = CounterGauge(metrics.counter("longest_timer_run_ms"))
        self.shutdown = ShutdownLine(self.flushes)

    def close(self) -> None:
        # Called in thread mode only when the input ends (a bounded input, `flink stop
        # --drain`); a stop with a savepoint or a cancel ends with `ShutdownLine` instead.
        self.shutdown.write()
        for counter in self.batched:
            counter.flush()

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        key, raw, topic, partition, offset, origin = value[:6]
        # Flink's processing time is the same wall clock; asking Java for it costs a call.
        now = int(time.time() * 1000)
        self.flushes.on_input()
        if origin == ORIGIN_LATEST:
            yield from self._load_latest(key, raw, (topic, partition, offset), now, ctx)
            return
        self.records_in.inc()
        try:
            record = self.intake.read(key, raw, topic, partition, offset, now)
        except DeadLettered as refused:
            yield DEAD_LETTERS, Row(refused.key, refused.letter)
            return
        entry = Entry.load(self.entry.value())
        entry.merged_input = True
        changed, kept_out = merge_bounded(entry.state, record, self.limits)
        self.merged.inc()
        for part in kept_out:
            where = {"topic": topic, "partition": partition, "offset": offset}
            letter = refused_letter(self.limited, record.vin, part, where, now, record.pod)
            yield DEAD_LETTERS, Row(key, letter)
        due = self.flush.on_record(entry, record.vin, now, changed)
        if due is not None:
            ctx.timer_service().register_processing_time_timer(due)
        self.entry.update(entry.saved())

    def _load_latest(
        self, key: str, raw: bytes | None, origin: tuple[str, int, int], now: int, ctx: Any
    ) -> Iterator[tuple[OutputTag, Row]]:
        """A record of the `latest` topic, read at a stateless start: merged without marking
        the VIN changed (the topic already holds it). A tombstone forgets a VIN that nothing
        newer has touched; a record it cannot read is dead-lettered, counted and logged.

        Both topics are read at once, so the input may have reached a VIN first. Its flush may
        then have replaced the topic's record with one that lacks what this one adds: a change
        marks the VIN changed after all, and a tombstone (older than that input) is ignored."""
        entry = Entry.load(self.entry.value())
        if raw is None:
            if not entry.merged_input:
                self.entry.clear()
            return
        try:
            record = self.intake.read_latest(key, raw, *origin, now)
        except DeadLettered as refused:
            yield DEAD_LETTERS, Row(refused.key, refused.letter)
            return
        changed = entry.state.merge_record(record) and entry.merged_input
        self.loaded.inc()
        due = self.flush.on_record(entry, key, now, changed)
        if due is not None:
            ctx.timer_service().register_processing_time_timer(due)
        self.entry.update(entry.saved())

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        entry = Entry.load(self.entry.value())
        if timestamp != entry.next_flush:
            # Not this VIN's flush timer (it has one, at next_flush): the closing timer of a
            # flush (FlushTracker), or a timer left behind by a VIN forgotten since.
            self._flush_done(self.flushes.on_closing_timer(timestamp))
            return
        turn = self.flushes.on_timer(timestamp)
        if turn is not NO_TURN:
            self._flush_done(turn.finished)
            if turn.close_at is not None:
                ctx.timer_service().register_processing_time_timer(turn.close_at)
        vin = ctx.get_current_key()
        now = int(time.time() * 1000)
        flushed = self.flush.on_timer(entry, vin, timestamp, now)
        if flushed.expired:
            self.entry.clear()
            self.expired.inc()
            self.flushes.on_tombstone()
            tombstone = Row(vin, None)
            if self.tombstones_as_delete:
                tombstone.set_row_kind(RowKind.DELETE)
            yield tombstone
            return
        counted = self.census.on_timer(entry, vin, timestamp, now)
        if counted is not None:
            self._census_done(counted)
        if flushed.value is not None:
            self.emitted.inc()
            self.flushes.on_emit()
            yield Row(vin, flushed.value.decode())
        ctx.timer_service().register_processing_time_timer(entry.next_flush)
        self.entry.update(entry.saved())

    def _census_done(self, counted: CensusCount) -> None:
        self.vins_held.set(counted.held)
        for gauge, silent in zip(self.vins_silent, counted.silent, strict=True):
            gauge.set(silent)
        silent_fields = {
            f"silent_{label}": silent
            for label, silent in zip(self.silence_labels, counted.silent, strict=True)
        }
        most = ",".join(f"{vin}:{ms}" for vin, ms in counted.most_silent)
        log_event(
            log, COMPONENT, "census", vins_held=counted.held, **silent_fields, most_silent=most
        )

    def _flush_done(self, finished: FlushSummary | None) -> None:
        if finished is not None:
            for counter in self.batched:
                counter.flush()
            self.last_flush_duration.set(finished.duration_ms)
            self.last_flush_at.set(self.flushes.last_at_ms)
            self.longest_timer_run.set(finished.longest_run_ms)
            log_flush(finished)


class DoNothing(KeyedProcessFunction):  # type: ignore[misc]
    """The floor `bethos bench merger` holds `MergeFunction` against (`floor_graph`): keyed
    as the merge is, it does nothing. It lives here, not in `floor_graph`, because a
    TaskManager's Python keeps the modules the first job on it imported (thread mode), and a
    module no earlier job imported cannot be found once that job's files are gone: every
    merger job imports this one."""

    def process_element(self, value, ctx):  # type: ignore[no-untyped-def]
        return None


def refused_letter(
    counter: Any, vin: str, part: Refused, origin: dict[str, object], now: int, pod: str = ""
) -> str:
    """Count and log the signals a limit kept out of a VIN's state; their dead letter (an
    aggregated record of those signals)."""
    counter.inc(len(part.signals))
    log_event(
        log,
        COMPONENT,
        "error",
        logging.ERROR,
        reason=part.reason,
        err=f"{part.detail}: {len(part.signals)} signals of {vin!r} refused",
        **origin,
    )
    kept_out = AggregatedRecord(vin, part.signals, pod, 0, 0)
    return dead_letter(encode_aggregated(kept_out), part.reason, part.detail, origin, now)


class ShutdownLine:
    """Writes the `event=shutdown_flush` line once, with the flush under way (zeros when none
    is): from `close()` where Flink calls it, else when the operator's Python thread state is
    torn down.

    In thread mode Flink calls a Python function's `close()` only from `endInput()` (PyFlink's
    `AbstractOneInputEmbeddedPythonFunctionOperator`): a bounded input or `flink stop --drain`.
    A stop with a savepoint stops the input without ending it, and a cancel neither; the Java
    operator's `close()` only closes its `PythonInterpreter`, which clears the thread state
    that the operator's Python calls ran in. That state holds this object's thread-local guard,
    whose finalizer then writes the line (tests/integration/test_logs.py finds it after a stop
    with a savepoint). Every merge not yet emitted stays in keyed state, which the savepoint
    carries.
    """

    def __init__(self, flushes: FlushTracker) -> None:
        self.flushes = flushes
        self.written = False
        self.local = threading.local()
        self.local.guard = _Finalizer(self)

    def write(self) -> None:
        if not self.written:
            self.written = True
            log_flush(self.flushes.finish() or self.flushes.empty(), "shutdown_flush")


class _Finalizer:
    def __init__(self, line: ShutdownLine) -> None:
        self.line = line

    def __del__(self) -> None:
        # A finalizer must not raise; at interpreter exit logging may be gone.
        with contextlib.suppress(Exception):
            self.line.write()


def log_flush(summary: FlushSummary | None, event: str = "flush") -> None:
    """The `event=flush` (or `shutdown_flush`) line: the fields its operator knows."""
    if summary is not None:
        log_event(log, COMPONENT, event, **summary.fields())
