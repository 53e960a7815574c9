"""Flink wiring of `inline`: the merge's emissions straight to stdout, a JSON-lines file or a
Kafka topic; with `batch_size` > 1 through `BatchFunction` (uid `latest-merger-inline-batcher`),
one message per batch. The logic is `bethos.strategies.inline.InlineLogic`."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, ProcessFunction, RuntimeContext

from bethos.logevents import log_event
from bethos.strategies.flushing import NO_TURN, FlushTracker, Pending, delivery_bucket
from bethos.strategies.inline import Inline, InlineLogic, InlineSettings
from bethos_flink.delivery import BufferedDelivery
from bethos_flink.environment import ensure_logging
from bethos_flink.merge_function import COMPONENT, ShutdownLine, log, log_flush
from bethos_flink.merger_graph import MergerGraph
from bethos_flink.rows import ROW_KEY_VALUE, add_append_sink
from connectors.kafka.tables import append_sink_ddl

BATCHER_UID = "latest-merger-inline-batcher"
LINE_WRITER_UID = "latest-merger-inline-lines"


class BatchFunction(BufferedDelivery):
    """`inline` with `batch_size` > 1: one message per batch, a JSON array of records, keyed by
    the delivery bucket.

    The batches are formed here, downstream of the merge, so this operator writes the flush's
    `event=flush` line with `message_count` (batches sent) and `emitted` (records in them),
    per flush interval; the merge's line has the VINs held. A flush's deliveries end at no
    time this operator can know (each bucket lingers after its last emission), so its line
    is written by a closing timer at the end of the flush interval (`FlushTracker`), on the
    bucket that delivered first."""

    def __init__(self, logic: InlineLogic) -> None:
        super().__init__(logic.delivery)
        self.logic = logic

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)
        self.flushes = FlushTracker(self.logic.flush.interval_ms, counts_vins=False)
        self.shutdown = ShutdownLine(self.flushes)
        self.close_at: int | None = None

    def close(self) -> None:
        self.shutdown.write()

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        yield from super().process_element(value, ctx)
        self._register_closing_timer(ctx)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        # A closing timer may share its time with the bucket's linger timer: one timer, both.
        log_flush(self.flushes.on_closing_timer(timestamp))
        yield from super().on_timer(timestamp, ctx)
        self._register_closing_timer(ctx)

    def deliver(self, bucket: int, entries: Sequence[Pending]) -> list[Row]:
        messages = self.logic.batch_messages(bucket, entries)
        emitted = sum(1 for _, value in entries if value is not None)
        turn = self.flushes.on_delivery(int(time.time() * 1000), emitted, len(messages))
        if turn is not NO_TURN:
            log_flush(turn.finished)
            self.close_at = turn.close_at
        return [Row(key, value.decode()) for key, value in messages]

    def _register_closing_timer(self, ctx: Any) -> None:
        # deliver() has no context: the timer a new flush asked for is registered here.
        if self.close_at is not None:
            ctx.timer_service().register_processing_time_timer(self.close_at)
            self.close_at = None


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
        line = InlineLogic.line(key, text.encode() if text is not None else None)
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


def wire(graph: MergerGraph, options: Inline) -> None:
    logic = options.build()
    inline = options.inline
    messages = graph.merge_per_vin(
        logic.flush, tombstones_as_delete=False, messages_downstream=logic.batched
    )
    if logic.batched:
        messages = (
            messages.key_by(lambda row: delivery_bucket(row[0]), key_type=Types.INT())
            .process(BatchFunction(logic), output_type=ROW_KEY_VALUE)
            .uid(BATCHER_UID)
            .name(f"batches of {inline.batch_size} VINs")
        )
    if inline.sink == "kafka":
        settings = graph.settings
        topic = inline.kafka_topic(settings.topics.latest)
        prefix = settings.transactional_id_prefix("inline")
        graph.t_env.execute_sql(append_sink_ddl("inline_out", topic, settings.kafka, prefix))
        add_append_sink(graph.t_env, graph.statements, messages, "inline_out")
    else:
        messages.process(LineWriter(inline)).uid(LINE_WRITER_UID).name(f"write to {inline.sink}")
