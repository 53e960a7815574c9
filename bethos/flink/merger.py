"""Flink wiring of the latest merger: Kafka -> keyed merge -> timer flush -> Kafka."""

from __future__ import annotations

import logging
import time
from typing import Any

from pyflink.common import Row, RowKind, Types
from pyflink.datastream import DataStream, KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor
from pyflink.table.expressions import col

from bethos.config import MergerSettings
from bethos.exceptions import DeadLettered, RecordError
from bethos.flink import window_stream as windowed
from bethos.flink.delivery import BatchFunction, LineWriter, StoreWriter
from bethos.flink.environment import create_environments, ensure_logging
from bethos.flink.rows import (
    KEYLESS,
    ORIGIN_AGGREGATED,
    ORIGIN_LATEST,
    ROW_DEAD_LETTER,
    ROW_INPUT,
    ROW_KEY_VALUE,
    BatchedCounter,
    Intake,
    add_dead_letter_sink,
    add_sink,
    keyed_by_first_column,
)
from bethos.logevents import log_event
from bethos.merge import Entry
from bethos.record import decode_aggregated
from bethos.strategies.base import MergerOptions
from bethos.strategies.flushing import (
    FlushSummary,
    FlushTracker,
    delivery_bucket,
    expired,
    flush_due,
    stagger_offset,
)
from bethos.strategies.inline import Inline
from bethos.strategies.state_store import StateStore
from bethos.strategies.window_stream import WindowStream
from connectors.kafka.tables import append_sink_ddl, source_table_ddl, upsert_sink_ddl

log = logging.getLogger("bethos.latest_merger")
COMPONENT = "latest_merger"
MERGE_UID = "latest-merger-merge"
STORE_WRITER_UID = "latest-merger-store-writer"
BATCHER_UID = "latest-merger-inline-batcher"
LINE_WRITER_UID = "latest-merger-inline-lines"
DEAD_LETTERS = OutputTag("dead-letters", ROW_DEAD_LETTER)


class MergeFunction(KeyedProcessFunction):  # type: ignore[misc]
    """Merges each record into the VIN's state; a processing-time timer flushes it."""

    def __init__(self, options: MergerOptions, tombstones_as_delete: bool = True) -> None:
        self.options = options
        # An upsert sink needs a DELETE row; buffered sinks take a null value.
        self.tombstones_as_delete = tombstones_as_delete

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
        self.intake = Intake(metrics, log, COMPONENT)
        self.emitted = BatchedCounter(metrics.counter("emitted"))
        self.expired = metrics.counter("expired")
        self.loaded = BatchedCounter(metrics.counter("loaded_from_latest"))
        self.batched = (self.records_in, self.merged, self.emitted, self.loaded)
        self.flushes = FlushTracker(self.options.flush_interval)
        metrics.gauge("vins_held", lambda: self.flushes.last.vin_count if self.flushes.last else 0)
        metrics.gauge(
            "last_flush_duration_ms",
            lambda: self.flushes.last.duration_ms if self.flushes.last else 0,
        )

    def close(self) -> None:
        # Stopping (with a savepoint or not): the flush under way ends here; every merge not
        # yet emitted stays in keyed state, which the savepoint carries.
        summary = self.flushes.finish() or FlushSummary(0, 0, 0, 0)
        self._log_flush(summary, "shutdown_flush")
        for counter in self.batched:
            counter.flush()

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        key, raw, topic, partition, offset, origin = value[:6]
        # Flink's processing time is the same wall clock; asking Java for it costs a call.
        now = int(time.time() * 1000)
        if origin == ORIGIN_LATEST:
            self._load_latest(key, raw, now, ctx)
            return
        self.records_in.inc()
        try:
            record = self.intake.read(key, raw, topic, partition, offset, now)
        except DeadLettered as refused:
            yield DEAD_LETTERS, Row(refused.key, refused.letter)
            return
        entry = self._entry()
        if entry.state.merge_record(record):
            entry.dirty = True
        self.merged.inc()
        self._schedule(entry, record.vin, now, ctx)
        self.entry.update(entry.saved())

    def _entry(self) -> Entry:
        return Entry.load(self.entry.value())

    def _load_latest(self, key: str, raw: bytes | None, now: int, ctx: Any) -> None:
        """A record of the `latest` topic, read at a stateless start: merged without marking
        the VIN changed (the topic already holds it). A tombstone forgets a VIN that nothing
        newer has touched."""
        entry = self._entry()
        if raw is None:
            if not entry.dirty:
                self.entry.clear()
            return
        try:
            record = decode_aggregated(raw)
        except RecordError:
            return  # written by this job; a record it cannot read again holds nothing to keep
        entry.state.merge_record(record)
        self.loaded.inc()
        self._schedule(entry, key, now, ctx)
        self.entry.update(entry.saved())

    def _schedule(self, entry: Entry, vin: str, now: int, ctx: Any) -> None:
        if self.options.vin_ttl is not None:
            entry.last_seen = now
        if entry.next_flush is None:
            interval = self.options.flush_interval
            offset = stagger_offset(vin, interval) if self.options.stagger else 0
            entry.next_flush = flush_due(now, interval, offset)
            ctx.timer_service().register_processing_time_timer(entry.next_flush)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        finished = self.flushes.on_timer(timestamp)
        if finished is not None:
            for counter in self.batched:
                counter.flush()
            self._log_flush(finished)
        vin = ctx.get_current_key()
        entry = self._entry()
        if expired(entry.last_seen, timestamp, self.options.vin_ttl):
            self.entry.clear()
            self.expired.inc()
            self.flushes.on_emit()
            tombstone = Row(vin, None)
            if self.tombstones_as_delete:
                tombstone.set_row_kind(RowKind.DELETE)
            yield tombstone
            return
        if self.options.emit == "all" or entry.dirty:
            value = entry.state.encode_latest(vin, produced_at=int(time.time() * 1000))
            entry.dirty = False
            self.emitted.inc()
            self.flushes.on_emit()
            yield Row(vin, value.decode())
        entry.next_flush = timestamp + self.options.flush_interval
        ctx.timer_service().register_processing_time_timer(entry.next_flush)
        self.entry.update(entry.saved())

    def _log_flush(self, summary: FlushSummary | None, event: str = "flush") -> None:
        if summary is not None:
            log_event(
                log,
                COMPONENT,
                event,
                flush_duration_ms=summary.duration_ms,
                vin_count=summary.vin_count,
                message_count=summary.message_count,
                emitted=summary.emitted,
            )


def _input_query(t_env: Any, settings: MergerSettings) -> str:
    """The merger's input: the aggregated topic, and with `bootstrap_from_latest` the `latest`
    topic up to its end at start (SPEC section 6). One (key, ROW_INPUT) row per message."""
    topics, kafka = settings.topics, settings.kafka
    t_env.execute_sql(
        source_table_ddl(
            "aggregated_in",
            topics.aggregated,
            kafka,
            settings.consumer_group,
            settings.start_from_oldest,
        )
    )
    # Keys travel as text, a missing one as KEYLESS (see there).
    key = f"COALESCE(CAST(`key` AS STRING), '{KEYLESS}')"

    def select(table: str, origin: str) -> str:
        return (
            f"SELECT {key} AS `key`, ROW({key}, `value`, `topic`, `partition`, `offset`, "
            f"'{origin}') AS `element` FROM {table}"
        )

    query = select("aggregated_in", ORIGIN_AGGREGATED)
    if settings.latest_merger.bootstrap_from_latest:
        t_env.execute_sql(
            source_table_ddl(
                "latest_in",
                topics.latest,
                kafka,
                f"{settings.consumer_group}-bootstrap",
                from_earliest=True,
                bounded=True,
            )
        )
        query += " UNION ALL " + select("latest_in", ORIGIN_LATEST)
    return query


def build(settings: MergerSettings):  # type: ignore[no-untyped-def]
    """The merger's job graph; returns the environment and the statement set to execute."""
    env, t_env = create_environments(settings.flink)
    options = settings.latest_merger
    strategy = options.strategy
    query = t_env.sql_query(_input_query(t_env, settings))
    t_env.execute_sql(append_sink_ddl("dead_letters_out", settings.topics.dlq, settings.kafka))
    statements = t_env.create_statement_set()

    if isinstance(options, WindowStream):
        records = t_env.to_append_stream(query.select(col("element").flatten), ROW_INPUT)
        merged, dead_letters = windowed.build(records, options)
    else:
        merged = (
            keyed_by_first_column(t_env, query, Types.STRING(), ROW_INPUT)
            .process(
                MergeFunction(options, tombstones_as_delete=strategy == "log_compacted"),
                output_type=ROW_KEY_VALUE,
            )
            .uid(MERGE_UID)
            .name("merge per VIN")
        )
        dead_letters = merged.get_side_output(DEAD_LETTERS)
    add_dead_letter_sink(t_env, statements, dead_letters, "dead_letters_out")

    if strategy in ("log_compacted", "window_stream"):
        t_env.execute_sql(upsert_sink_ddl("latest_out", settings.topics.latest, settings.kafka))
        add_sink(t_env, statements, merged, "latest_out", changelog=True)
    elif isinstance(options, StateStore):
        (
            merged.key_by(lambda row: delivery_bucket(row[0]), key_type=Types.INT())
            .process(StoreWriter(options.state_store), output_type=ROW_KEY_VALUE)
            .uid(STORE_WRITER_UID)
            .name(f"write to the {options.state_store.backend} store")
        )
    elif isinstance(options, Inline):
        _inline_sink(t_env, statements, merged, settings, options)
    return env, statements


def _inline_sink(
    t_env: Any, statements: Any, merged: DataStream, settings: MergerSettings, options: Inline
) -> None:
    inline = options.inline
    messages = merged
    if inline.batch_size > 1:
        messages = (
            merged.key_by(lambda row: delivery_bucket(row[0]), key_type=Types.INT())
            .process(BatchFunction(inline), output_type=ROW_KEY_VALUE)
            .uid(BATCHER_UID)
            .name(f"batches of {inline.batch_size} VINs")
        )
    if inline.sink == "kafka":
        topic = inline.topic or settings.topics.latest
        t_env.execute_sql(append_sink_ddl("inline_out", topic, settings.kafka))
        add_dead_letter_sink(t_env, statements, messages, "inline_out")
    else:
        messages.process(LineWriter(inline)).uid(LINE_WRITER_UID).name(f"write to {inline.sink}")
