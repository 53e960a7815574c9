"""Flink wiring of the ETL job: ticks -> per-pod poller (keyed state) -> Kafka.

A Flink source cannot be written in Python, so a once-a-second `datagen` tick drives a
KeyedProcessFunction keyed by pod; the pod's progress lives in keyed state, so checkpoints and
savepoints carry it and pods spread over the parallel subtasks. The function only adapts:
`PollDriver` (bethos/source/poller.py) plans, reads on its own threads and settles; the
function saves the progress it returns, emits the records, counts and logs.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

from pyflink.common import Encoder, Row, Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.connectors.file_system import (
    BucketAssigner,
    FileSink,
    OutputFileConfig,
    RollingPolicy,
)
from pyflink.datastream.state import ValueStateDescriptor

from bethos.config import EtlSettings
from bethos.deadletter import dead_letter
from bethos.exceptions import ProgressFileError
from bethos.fetch_result import Reject, Window
from bethos.logevents import log_event
from bethos.record import AggregatedRecord, encode_aggregated
from bethos.source import progress_file
from bethos.source.layout import resource_map_for
from bethos.source.poller import PodProgress, PollDriver, ReconcileState, TickResult
from bethos.source.rejects import first_sent, reach_back
from bethos.source.window_reads import FinishedRead
from bethos_flink.environment import create_environments, ensure_logging, freeze_loaded_objects
from bethos_flink.rows import (
    KEYLESS,
    ROW_DEAD_LETTER,
    ROW_KEY_VALUE,
    CounterGauge,
    add_dead_letter_sink,
    add_sink,
    key_value_row,
)
from bethos_flink.uids import SinkStatements, planner_uids
from connectors.influxdb.client import InfluxClient
from connectors.kafka.tables import append_sink_ddl, upsert_sink_ddl

log = logging.getLogger("bethos.influxdb_source")
COMPONENT = "influxdb_source"
POLLER_UID = "influxdb-pod-poller"
SETTLE_CHECK_MS = 100
PROGRESS_JOURNAL_UID = "progress-journal"
DEAD_LETTERS = OutputTag("dead-letters", ROW_DEAD_LETTER)
# Journal lines of the progress file (`checkpoint_path`): see bethos/source/progress_file.py.
PROGRESS = OutputTag("progress", Types.STRING())


def influx_clients(settings: EtlSettings) -> Callable[[], InfluxClient]:
    """What opens an InfluxDB client for a read thread: the ETL's settings, with `batch_size`
    rows per piece of InfluxDB's chunked response."""
    return functools.partial(
        InfluxClient,
        settings.influxdb,
        rows_per_response_chunk=settings.batch_size,
        resource_map=resource_map_for(settings),
    )


class PodMetrics:
    """Per-pod metrics under the `pod` group: rows read, retries, failures, lag and the time of
    the last successful poll (epoch ms, 0 before the first); of the reconcile passes, the
    values found late and the time the last pass took."""

    def __init__(self, group: Any, pod: str) -> None:
        pod_group = group.add_group("pod", pod)
        self.rows_read = pod_group.counter("rows_read")
        self.retries = pod_group.counter("retries")
        self.failures = pod_group.counter("failures")
        self.truncated = pod_group.counter("truncated")
        self.records_out = pod_group.counter("records_out")
        self.dead_lettered = pod_group.counter("dead_lettered")
        self.rejects_repeated = pod_group.counter("rejects_repeated")
        self.lag = CounterGauge(pod_group.counter("lag_ms"))
        self.last_poll_at = CounterGauge(pod_group.counter("last_poll_at_ms"))
        self.reconcile_passes = pod_group.counter("reconcile_passes")
        self.late_recovered = pod_group.counter("late_recovered")
        self.reconcile_duration = CounterGauge(pod_group.counter("reconcile_ms"))

    @property
    def lag_ms(self) -> int:
        return self.lag.value


def record_rows(records: list[AggregatedRecord]) -> Iterator[Row]:
    """The rows of the aggregated topic's sink: the VIN as key, the encoded record as value."""
    for record in records:
        yield key_value_row(record.vin, encode_aggregated(record).decode())


def log_error(pod: str, err: str, window: Window, lag_ms: int) -> None:
    log_event(
        log,
        COMPONENT,
        "error",
        logging.ERROR,
        pod=pod,
        err=err,
        window_start=window.start,
        lag_ms=lag_ms,
    )


class PodPollFunction(KeyedProcessFunction):  # type: ignore[misc]
    def __init__(self, settings: EtlSettings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        ensure_logging()
        freeze_loaded_objects()
        self.driver = PollDriver(self.settings, influx_clients(self.settings), random.Random())
        # PodProgress (completed_until, failed_attempts, next_poll_at) as a plain tuple
        self.progress = runtime_context.get_state(
            ValueStateDescriptor("pod_progress", Types.PICKLED_BYTE_ARRAY())
        )
        # ReconcileState (next_at, since, known counts per bucket) as a plain tuple
        self.reconcile = runtime_context.get_state(
            ValueStateDescriptor("pod_reconcile", Types.PICKLED_BYTE_ARRAY())
        )
        # The rejects dead-lettered already: fingerprint -> row time (bethos.source.rejects)
        self.rejects_sent = runtime_context.get_state(
            ValueStateDescriptor("pod_rejects_sent", Types.PICKLED_BYTE_ARRAY())
        )
        self.metric_group = runtime_context.get_metrics_group()
        self.pod_metrics: dict[str, PodMetrics] = {}

    def close(self) -> None:
        self.driver.close()

    def _metrics(self, pod: str) -> PodMetrics:
        metrics = self.pod_metrics.get(pod)
        if metrics is None:
            metrics = self.pod_metrics[pod] = PodMetrics(self.metric_group, pod)
        return metrics

    def process_element(self, tick: object, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        """Each tick: settle the pod's finished read (emit, advance), then hand over the next
        read when one is due (`PollDriver`). Reads run on the driver's threads in between."""
        yield from self._step(ctx)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        yield from self._step(ctx)

    def _step(self, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        pod = ctx.get_current_key()
        timers = ctx.timer_service()
        now = timers.current_processing_time()
        stored = self.progress.value()
        saved = None if stored is None else PodProgress(*stored)
        stored_reconcile = self.reconcile.value()
        saved_reconcile = None if stored_reconcile is None else ReconcileState(*stored_reconcile)
        result = self.driver.tick(pod, now, saved, saved_reconcile)
        self._fold_progress(pod, now)
        if result.progress != saved:
            # A plain tuple, as the first version stored it: savepoints stay readable both ways.
            self.progress.update(tuple(result.progress))
        if result.reconcile is not None and result.reconcile != saved_reconcile:
            self.reconcile.update(tuple(result.reconcile))
        metrics = self._metrics(pod)
        metrics.lag.set(now - result.progress.completed_until)
        if result.stale is not None:
            log_error(
                pod,
                "a finished read does not start at the saved progress; it is read again",
                result.stale,
                metrics.lag_ms,
            )
        if result.read is not None and result.read.reconcile:
            yield from self._emit_reconciled(pod, now, result.read, result, metrics)
        elif result.read is not None:
            yield from self._emit(pod, now, result.read, result, metrics)
        if self.driver.reading(pod):
            # Ticks come once a second; a timer looks again sooner, so that a finished read
            # waits at most SETTLE_CHECK_MS. Aligned times: one timer per slot and pod.
            timers.register_processing_time_timer((now // SETTLE_CHECK_MS + 1) * SETTLE_CHECK_MS)

    def _fold_progress(self, pod: str, now: int) -> None:
        """The progress file is for a start without state; a damaged one must not stop the
        polls, which keep their progress in Flink's state. So it is logged, and tried again."""
        try:
            self.driver.fold_progress(now)
        except ProgressFileError as exc:
            log_event(log, COMPONENT, "error", logging.ERROR, pod=pod, err=str(exc))

    def _emit(
        self, pod: str, now: int, read: FinishedRead, result: TickResult, metrics: PodMetrics
    ) -> Iterator[Any]:
        """What a settled read gives: records and dead letters, or its retry or failure."""
        emit_started = time.monotonic()
        window = read.window
        for cut in read.truncated:
            metrics.truncated.inc()
            log_event(
                log,
                COMPONENT,
                "truncated",
                logging.WARNING,
                pod=pod,
                window_start=cut.start,
                window_end=cut.end,
                action="split_and_reread",
            )
        found = read.result
        if found is None:
            if result.gave_up:
                metrics.failures.inc()
                log_error(pod, read.error, window, metrics.lag_ms)
            else:
                metrics.retries.inc()
                log_event(
                    log,
                    COMPONENT,
                    "retry",
                    logging.WARNING,
                    pod=pod,
                    attempt=result.progress.failed_attempts,
                    err=read.error,
                    retry_in_ms=result.progress.next_poll_at - now,
                )
            return
        metrics.rows_read.inc(found.readings)
        metrics.last_poll_at.set(now)
        rejected = yield from self._records_and_rejects(pod, now, read, result, metrics)
        entry = self.driver.journal_entry(pod, result)
        if entry is not None:
            yield PROGRESS, entry
        ended = time.monotonic()
        # duration_ms runs from handing the read over to the last record handed to the Kafka
        # sink; read_ms is the read itself (query and parse), read_cpu_ms the part of it the
        # read thread worked (parsing), emit_ms the hand-over.
        log_event(
            log,
            COMPONENT,
            "poll",
            pod=pod,
            window_start=window.start,
            window_end=window.end,
            rows=found.readings,
            records=len(result.records),
            rejected=rejected,
            lag_ms=metrics.lag_ms,
            duration_ms=int((ended - read.submitted_at) * 1000),
            read_ms=int(read.read_seconds * 1000),
            read_cpu_ms=int(read.read_cpu_seconds * 1000),
            emit_ms=int((ended - emit_started) * 1000),
        )

    def _emit_reconciled(
        self, pod: str, now: int, read: FinishedRead, result: TickResult, metrics: PodMetrics
    ) -> Iterator[Any]:
        """What a reconcile pass gives: the records of the buckets read again, or its error
        (the next pass tries again)."""
        metrics.reconcile_passes.inc()
        metrics.reconcile_duration.set(int(read.read_seconds * 1000))
        found, reconciled = read.result, read.reconciled
        if found is None or reconciled is None:
            log_event(
                log,
                COMPONENT,
                "reconcile_error",
                logging.WARNING,
                pod=pod,
                err=read.error,
                window_start=read.window.start,
                window_end=read.window.end,
            )
            return
        yield from self._records_and_rejects(pod, now, read, result, metrics)
        metrics.late_recovered.inc(reconciled.late)
        log_event(
            log,
            COMPONENT,
            "reconcile",
            pod=pod,
            window_start=read.window.start,
            window_end=read.window.end,
            buckets=len(reconciled.counts),
            grown=len(reconciled.grown),
            late=reconciled.late,
            records=len(result.records),
            duration_ms=int(read.read_seconds * 1000),
        )

    def _records_and_rejects(
        self, pod: str, now: int, read: FinishedRead, result: TickResult, metrics: PodMetrics
    ) -> Generator[Any, None, int]:
        """The read's records and its new dead letters; returns how many of those."""
        found = read.result
        assert found is not None
        window = read.window
        yield from record_rows(result.records)
        metrics.records_out.inc(len(result.records))
        rejects = self._first_sent(found.rejects, result, metrics)
        for reject in rejects:
            origin = {"pod": pod, "window_start": window.start, "window_end": window.end}
            yield (
                DEAD_LETTERS,
                Row(KEYLESS, dead_letter(reject.row, reject.reason, reject.detail, origin, now)),
            )
        return len(rejects)

    def _first_sent(
        self, rejects: list[Reject], result: TickResult, metrics: PodMetrics
    ) -> list[Reject]:
        """The rejects that no earlier read (of the lookback, or a reconcile pass) has
        dead-lettered; the others are counted as repeated."""
        sent = self.rejects_sent.value()
        if not rejects and not sent:
            return []
        sent = {} if sent is None else sent
        new, repeated = first_sent(
            rejects, sent, reach_back(result.progress.completed_until, self.settings)
        )
        self.rejects_sent.update(sent)
        metrics.dead_lettered.inc(len(new))
        metrics.rejects_repeated.inc(repeated)
        return new


def add_progress_journal(env: Any, entries: Any, checkpoint_path: str) -> None:
    """The journal of the progress file: Flink's FileSink shows a part only once the
    checkpoint that holds it completes, and the Kafka sink is acknowledged by then for every
    record handed to it before that checkpoint's barrier. Unaligned checkpoints would let
    records in flight skip the flush, so they stay off."""
    env.get_checkpoint_config().enable_unaligned_checkpoints(False)
    journal = progress_file.journal_dir(checkpoint_path).as_uri()
    sink = (
        FileSink.for_row_format(journal, Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .with_rolling_policy(RollingPolicy.on_checkpoint_rolling_policy())
        .with_output_file_config(
            OutputFileConfig.builder()
            .with_part_prefix("progress")
            .with_part_suffix(".jsonl")
            .build()
        )
        .build()
    )
    entries.sink_to(sink).uid(PROGRESS_JOURNAL_UID).name("progress file, once Kafka acknowledged")


def build(settings: EtlSettings):  # type: ignore[no-untyped-def]
    resource_map_for(settings)  # a bad resource map fails here, before the job starts
    if settings.checkpoint_path:
        # Where the job is built: the workers' directory is another, and the FileSink and the
        # poller must name the same file.
        absolute = str(Path(settings.checkpoint_path).expanduser().resolve())
        settings = settings.model_copy(update={"checkpoint_path": absolute})
    env, t_env = create_environments(settings.flink, settings.checkpoint_interval_ms)
    t_env.execute_sql(
        "CREATE TEMPORARY TABLE ticks (n INT) WITH ("
        "'connector' = 'datagen', 'rows-per-second' = '1')"
    )
    t_env.execute_sql(upsert_sink_ddl("aggregated_out", settings.topics.aggregated, settings.kafka))
    t_env.execute_sql(append_sink_ddl("dead_letters_out", settings.topics.dlq, settings.kafka))
    pods = list(settings.influxdb.pods)
    with planner_uids(t_env, "ticks"):
        ticks = t_env.to_data_stream(t_env.from_path("ticks"))
    records = (
        ticks.flat_map(lambda _: pods, output_type=Types.STRING())
        .name("tick every pod")
        .key_by(lambda pod: pod, key_type=Types.STRING())
        .process(PodPollFunction(settings), output_type=ROW_KEY_VALUE)
        .uid(POLLER_UID)
        .name("poll InfluxDB per pod")
    )
    if settings.checkpoint_path:
        add_progress_journal(env, records.get_side_output(PROGRESS), settings.checkpoint_path)
    statements = SinkStatements(t_env)
    add_sink(t_env, statements, records, "aggregated_out")
    add_dead_letter_sink(
        t_env, statements, records.get_side_output(DEAD_LETTERS), "dead_letters_out"
    )
    return env, statements
