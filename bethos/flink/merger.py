"""Flink wiring of the latest merger: Kafka -> keyed merge -> timer flush -> Kafka."""

from __future__ import annotations

import logging
import time

from pyflink.common import Row, RowKind, Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from bethos.config import MergerOptions, MergerSettings
from bethos.deadletter import dead_letter
from bethos.exceptions import RecordError
from bethos.flink.common import (
    KEYLESS,
    ROW_DEAD_LETTER,
    ROW_KEY_VALUE,
    add_dead_letter_sink,
    add_sink,
    create_environments,
    ensure_logging,
)
from bethos.logevents import log_event
from bethos.merge import VinState
from bethos.record import decode_aggregated, encode_latest
from bethos.strategies import FlushSummary, FlushTracker, expired, flush_due, stagger_offset
from connectors.kafka.tables import append_sink_ddl, source_table_ddl, upsert_sink_ddl

log = logging.getLogger("bethos.latest_merger")
COMPONENT = "latest_merger"
MERGE_UID = "latest-merger-merge"
DEAD_LETTERS = OutputTag("dead-letters", ROW_DEAD_LETTER)


class MergeFunction(KeyedProcessFunction):  # type: ignore[misc]
    """Merges each record into the VIN's state; a processing-time timer flushes it."""

    def __init__(self, options: MergerOptions) -> None:
        self.options = options

    def open(self, runtime_context: RuntimeContext) -> None:
        ensure_logging()
        self.vin_state = runtime_context.get_state(
            ValueStateDescriptor("vin_state", Types.PICKLED_BYTE_ARRAY())
        )
        # True when the VIN changed since its last emission
        self.dirty = runtime_context.get_state(ValueStateDescriptor("dirty", Types.BOOLEAN()))
        self.next_flush = runtime_context.get_state(
            ValueStateDescriptor("next_flush", Types.LONG())
        )
        self.last_seen = runtime_context.get_state(ValueStateDescriptor("last_seen", Types.LONG()))
        metrics = runtime_context.get_metrics_group()
        self.records_in = metrics.counter("records_in")
        self.merged = metrics.counter("merged")
        self.skipped = metrics.counter("skipped")
        self.dead_lettered = metrics.counter("dead_lettered")
        self.emitted = metrics.counter("emitted")
        self.expired = metrics.counter("expired")
        self.flushes = FlushTracker(self.options.flush_interval)
        metrics.gauge("vins_held", lambda: self.flushes.last.vin_count if self.flushes.last else 0)
        metrics.gauge(
            "last_flush_duration_ms",
            lambda: self.flushes.last.duration_ms if self.flushes.last else 0,
        )

    def close(self) -> None:
        self._log_flush(self.flushes.finish())

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        self.records_in.inc()
        key, raw, topic, partition, offset = value[0], value[1], value[2], value[3], value[4]
        now = ctx.timer_service().current_processing_time()
        try:
            record = decode_aggregated(raw, now_ms=now)
            if key != KEYLESS and key != record.vin:
                raise RecordError("vin_mismatch", f"message key differs from vin {record.vin!r}")
        except RecordError as exc:
            self.dead_lettered.inc()
            if exc.reason == "empty_id":
                self.skipped.inc()
                log_event(
                    log,
                    COMPONENT,
                    "skip",
                    reason=exc.reason,
                    topic=topic,
                    partition=partition,
                    offset=offset,
                )
            origin = {"topic": topic, "partition": partition, "offset": offset}
            letter = dead_letter(raw, exc.reason, exc.detail, origin, now)
            yield DEAD_LETTERS, Row(key, letter)
            return
        state = VinState.from_tuple(self.vin_state.value())
        if state.merge_record(record):
            self.dirty.update(True)
        self.vin_state.update(state.to_tuple())
        self.merged.inc()
        if self.options.vin_ttl is not None:
            self.last_seen.update(now)
        if self.next_flush.value() is None:
            interval = self.options.flush_interval
            offset = stagger_offset(record.vin, interval) if self.options.stagger else 0
            due = flush_due(now, interval, offset)
            ctx.timer_service().register_processing_time_timer(due)
            self.next_flush.update(due)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        self._log_flush(self.flushes.on_timer(timestamp))
        vin = ctx.get_current_key()
        if expired(self.last_seen.value(), timestamp, self.options.vin_ttl):
            for state in (self.vin_state, self.dirty, self.next_flush, self.last_seen):
                state.clear()
            self.expired.inc()
            self.flushes.on_emit()
            tombstone = Row(vin, None)
            tombstone.set_row_kind(RowKind.DELETE)
            yield tombstone
            return
        if self.options.emit == "all" or self.dirty.value():
            state = VinState.from_tuple(self.vin_state.value())
            value = encode_latest(
                vin,
                state.latest_signals(),
                state.pod,
                state.received_at,
                produced_at=int(time.time() * 1000),
            )
            self.dirty.update(False)
            self.emitted.inc()
            self.flushes.on_emit()
            yield Row(vin, value.decode())
        due = timestamp + self.options.flush_interval
        ctx.timer_service().register_processing_time_timer(due)
        self.next_flush.update(due)

    def _log_flush(self, summary: FlushSummary | None) -> None:
        if summary is not None:
            log_event(
                log,
                COMPONENT,
                "flush",
                flush_duration_ms=summary.duration_ms,
                vin_count=summary.vin_count,
                message_count=summary.message_count,
                emitted=summary.emitted,
            )


def build(settings: MergerSettings):  # type: ignore[no-untyped-def]
    """The merger's job graph; returns the environment and the statement set to execute."""
    env, t_env = create_environments(settings.flink)
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
    t_env.execute_sql(upsert_sink_ddl("latest_out", topics.latest, kafka))
    t_env.execute_sql(append_sink_ddl("dead_letters_out", topics.dlq, kafka))

    # Keys travel as text, a missing one as KEYLESS (see there).
    records = t_env.to_data_stream(
        t_env.sql_query(
            f"SELECT COALESCE(CAST(`key` AS STRING), '{KEYLESS}') AS `key`, `value`, `topic`, "
            "`partition`, `offset` FROM aggregated_in"
        )
    )
    options = settings.latest_merger
    merged = (
        records.key_by(lambda row: row[0], key_type=Types.STRING())
        .process(MergeFunction(options), output_type=ROW_KEY_VALUE)
        .uid(MERGE_UID)
        .name("merge per VIN")
    )
    statements = t_env.create_statement_set()
    add_sink(t_env, statements, merged, "latest_out", changelog=True)
    add_dead_letter_sink(
        t_env, statements, merged.get_side_output(DEAD_LETTERS), "dead_letters_out"
    )
    return env, statements
