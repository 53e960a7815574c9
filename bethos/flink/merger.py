"""Flink wiring of the latest merger: Kafka -> keyed merge -> timer flush -> Kafka."""

from __future__ import annotations

import logging
import time

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from bethos.config import MergerSettings
from bethos.deadletter import dead_letter
from bethos.exceptions import RecordError
from bethos.flink.common import (
    ROW_DEAD_LETTER,
    ROW_KEY_VALUE,
    add_sink,
    create_environments,
    ensure_logging,
)
from bethos.logevents import log_event
from bethos.merge import VinState
from bethos.record import decode_aggregated, encode_latest
from bethos.strategies import flush_due
from connectors.kafka.tables import append_sink_ddl, source_table_ddl, upsert_sink_ddl

log = logging.getLogger("bethos.latest_merger")
COMPONENT = "latest_merger"
MERGE_UID = "latest-merger-merge"
DEAD_LETTERS = OutputTag("dead-letters", ROW_DEAD_LETTER)


class MergeFunction(KeyedProcessFunction):  # type: ignore[misc]
    """Merges each record into the VIN's state; a processing-time timer flushes it."""

    def __init__(self, flush_interval_ms: int, emit_all: bool) -> None:
        self.flush_interval_ms = flush_interval_ms
        self.emit_all = emit_all

    def open(self, runtime_context: RuntimeContext) -> None:
        ensure_logging()
        self.vin_state = runtime_context.get_state(
            ValueStateDescriptor("vin_state", Types.PICKLED_BYTE_ARRAY())
        )
        # 0 = emitted, 1 = changed since the last emission
        self.dirty = runtime_context.get_state(ValueStateDescriptor("dirty", Types.BOOLEAN()))
        self.next_flush = runtime_context.get_state(
            ValueStateDescriptor("next_flush", Types.LONG())
        )
        metrics = runtime_context.get_metrics_group()
        self.records_in = metrics.counter("records_in")
        self.merged = metrics.counter("merged")
        self.skipped = metrics.counter("skipped")
        self.dead_lettered = metrics.counter("dead_lettered")
        self.emitted = metrics.counter("emitted")
        self._flush_ts = 0
        self._flush_started = self._flush_last = 0.0
        self._flush_count = 0
        self._flush_emitted = 0
        self._last_flush_ms = 0
        metrics.gauge("last_flush_duration_ms", lambda: self._last_flush_ms)

    def close(self) -> None:
        self._finish_flush_log()

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        self.records_in.inc()
        key, raw, topic, partition, offset = value[0], value[1], value[2], value[3], value[4]
        now = int(time.time() * 1000)
        try:
            record = decode_aggregated(raw, now_ms=now)
            if key is not None and key.decode("utf-8", "replace") != record.vin:
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
            yield DEAD_LETTERS, Row(key, dead_letter(raw, exc.reason, exc.detail, origin, now))
            return
        state = VinState.from_tuple(self.vin_state.value())
        if state.merge_record(record):
            self.dirty.update(True)
        self.vin_state.update(state.to_tuple())
        self.merged.inc()
        if self.next_flush.value() is None:
            now = ctx.timer_service().current_processing_time()
            due = flush_due(now, self.flush_interval_ms)
            ctx.timer_service().register_processing_time_timer(due)
            self.next_flush.update(due)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        if timestamp != self._flush_ts:
            self._finish_flush_log()
            self._flush_ts, self._flush_started = timestamp, time.monotonic()
        self._flush_count += 1
        self._flush_last = time.monotonic()
        vin = ctx.get_current_key()
        if self.emit_all or self.dirty.value():
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
            self._flush_emitted += 1
            yield Row(vin, value.decode())
        due = timestamp + self.flush_interval_ms
        ctx.timer_service().register_processing_time_timer(due)
        self.next_flush.update(due)

    def _finish_flush_log(self) -> None:
        if self._flush_count:
            self._last_flush_ms = int((self._flush_last - self._flush_started) * 1000)
            log_event(
                log,
                COMPONENT,
                "flush",
                flush_duration_ms=self._last_flush_ms,
                vin_count=self._flush_count,
                message_count=self._flush_emitted,
                emitted=self._flush_emitted,
            )
        self._flush_count = self._flush_emitted = 0


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

    records = t_env.to_data_stream(t_env.from_path("aggregated_in"))
    options = settings.latest_merger
    merged = (
        records.key_by(
            lambda row: row[0].decode("utf-8", "replace") if row[0] else "", key_type=Types.STRING()
        )
        .process(
            MergeFunction(options.flush_interval, options.emit == "all"), output_type=ROW_KEY_VALUE
        )
        .uid(MERGE_UID)
        .name("merge per VIN")
    )
    statements = t_env.create_statement_set()
    add_sink(t_env, statements, merged, "latest_out")
    add_sink(t_env, statements, merged.get_side_output(DEAD_LETTERS), "dead_letters_out")
    return env, statements
