"""Flink wiring of `window_stream`: decode -> event-time watermarks -> per-VIN tumbling windows
with allowed lateness -> the `latest` topic. The logic is
`bethos.strategies.window_stream.WindowLogic` over a VIN's `WindowState`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

from pyflink.common import Duration, Row, Types, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from bethos.deadletter import dead_letter
from bethos.exceptions import DeadLettered, RecordError
from bethos.logevents import log_event
from bethos.merge_rule import VinState
from bethos.record import decode_aggregated
from bethos.strategies.window_stream import (
    Verdict,
    WindowLogic,
    WindowState,
    WindowStream,
    close_time,
    event_time,
)
from bethos_flink.environment import ensure_logging
from bethos_flink.merge_function import COMPONENT, log, refused_letter
from bethos_flink.merger_graph import MergerGraph
from bethos_flink.rows import INPUT_FIELDS, ORIGIN_LATEST, ROW_DEAD_LETTER, ROW_KEY_VALUE, Intake

DECODE_UID = "latest-merger-window-decode"
WINDOW_UID = "latest-merger-window-merge"
DEAD_LETTERS = OutputTag("window-dead-letters", ROW_DEAD_LETTER)

# The merger's input row plus the record's event time.
ROW_DECODED = Types.ROW([*INPUT_FIELDS, Types.LONG()])


class DecodeFunction(ProcessFunction):  # type: ignore[misc]
    """Checks each record and finds its event time; bad ones become dead letters."""

    def open(self, runtime_context: RuntimeContext) -> None:
        ensure_logging()
        metrics = runtime_context.get_metrics_group()
        self.records_in = metrics.counter("records_in")
        self.intake = Intake(metrics, log, COMPONENT)

    def process_element(self, value: Row, ctx: ProcessFunction.Context):  # type: ignore[no-untyped-def]
        key, raw, topic, partition, offset, origin = value[:6]
        if origin == ORIGIN_LATEST:
            if raw is None:
                return
            try:
                record = decode_aggregated(raw)
            except RecordError:
                return
            # Loaded state, not an event: it must not move the watermark.
            yield Row(record.vin, raw, topic, partition, offset, origin, 0)
            return
        self.records_in.inc()
        now = int(time.time() * 1000)
        try:
            record = self.intake.read(key, raw, topic, partition, offset, now)
        except DeadLettered as refused:
            yield DEAD_LETTERS, Row(refused.key, refused.letter)
            return
        yield Row(record.vin, raw, topic, partition, offset, origin, event_time(record))


class EventTimeAssigner(TimestampAssigner):  # type: ignore[misc]
    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        return int(value[6])


class WindowMergeFunction(KeyedProcessFunction):  # type: ignore[misc]
    def __init__(self, logic: WindowLogic) -> None:
        self.logic = logic

    def open(self, runtime_context: RuntimeContext) -> None:
        ensure_logging()
        self.state = runtime_context.get_state(
            ValueStateDescriptor("window_state", Types.PICKLED_BYTE_ARRAY())
        )
        metrics = runtime_context.get_metrics_group()
        self.merged = metrics.counter("merged")
        self.late = metrics.counter("late")
        self.late_emitted = metrics.counter("late_emitted")
        self.emitted = metrics.counter("emitted")
        self.dead_lettered = metrics.counter("dead_lettered")
        self.limited = metrics.counter("signals_refused")

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        vin, raw, topic, partition, offset, origin = value[:6]
        record = decode_aggregated(raw)
        state = WindowState.from_tuple(self.state.value())
        if origin == ORIGIN_LATEST:
            emit_again = self.logic.load(state, record)
            self.state.update(state.to_tuple())
            if emit_again:
                yield self._emission(vin, state.closed)
            return
        watermark = ctx.timer_service().current_watermark()
        outcome = self.logic.place(state, record, watermark)
        if outcome.verdict is Verdict.TOO_LATE:
            self.late.inc()
            self.dead_lettered.inc()
            log_event(
                log,
                COMPONENT,
                "late",
                vin=vin,
                window_end=outcome.end,
                watermark=watermark,
                topic=topic,
                partition=partition,
                offset=offset,
            )
            now = int(time.time() * 1000)
            detail = self.logic.too_late(outcome.end, watermark)
            origin_info = {"topic": topic, "partition": partition, "offset": offset}
            yield DEAD_LETTERS, Row(vin, dead_letter(raw, "late", detail, origin_info, now))
            return
        self.merged.inc()
        yield from self._refused(
            vin, state, {"topic": topic, "partition": partition, "offset": offset}
        )
        self.state.update(state.to_tuple())
        if outcome.verdict is Verdict.PENDING:
            if outcome.new_window:
                ctx.timer_service().register_event_time_timer(close_time(outcome.end))
        elif outcome.changed:
            self.late_emitted.inc()
            yield self._emission(vin, state.closed)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        state = WindowState.from_tuple(self.state.value())
        vin = ctx.get_current_key()
        for emission in self.logic.on_watermark(state, timestamp, vin):
            yield self._emission(vin, emission)
        yield from self._refused(vin, state, {"window_end": timestamp + 1})
        self.state.update(state.to_tuple())

    def _refused(
        self, vin: str, state: WindowState, origin: dict[str, object]
    ) -> Iterator[tuple[OutputTag, Row]]:
        """Dead letters for the signals `limits` kept out of the VIN's record; counted, logged."""
        now = int(time.time() * 1000)
        for part in state.refused:
            yield DEAD_LETTERS, Row(vin, refused_letter(self.limited, vin, part, origin, now))
        state.refused.clear()

    def _emission(self, vin: str, state: VinState) -> Row:
        value = state.encode_latest(vin, produced_at=int(time.time() * 1000))
        self.emitted.inc()
        return Row(vin, value.decode())


def wire(graph: MergerGraph, options: WindowStream) -> None:
    window = options.window
    decoded = (
        graph.records()
        .process(DecodeFunction(), output_type=ROW_DECODED)
        .uid(DECODE_UID)
        .name("decode")
    )
    # with_idleness() returns a strategy without the Python timestamp assigner: call it first.
    watermarks = (
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(window.out_of_orderness))
        .with_idleness(Duration.of_millis(window.idleness))
        .with_timestamp_assigner(EventTimeAssigner())
    )
    merged = (
        decoded.assign_timestamps_and_watermarks(watermarks)
        .key_by(lambda row: row[0], key_type=Types.STRING())
        .process(
            WindowMergeFunction(
                dataclasses.replace(options.build(), limits=graph.settings.limits.build())
            ),
            output_type=ROW_KEY_VALUE,
        )
        .uid(WINDOW_UID)
        .name(f"tumbling windows of {window.size} ms per VIN")
    )
    graph.dead_letters(
        decoded.get_side_output(DEAD_LETTERS).union(merged.get_side_output(DEAD_LETTERS))
    )
    graph.to_latest_topic(merged)
