"""Rows between Python and Java: their types, keyed streams without a Python key selector,
the merger's input and its intake, and routing rows into Kafka sink tables."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from pyflink.common import Row, RowKind, Types
from pyflink.common.typeinfo import TypeInformation
from pyflink.datastream import DataStream, KeyedStream
from pyflink.java_gateway import get_gateway
from pyflink.table import StreamTableEnvironment, Table

from bethos.deadletter import dead_letter
from bethos.exceptions import DeadLettered, RecordError
from bethos.logevents import log_event
from bethos.record import AggregatedRecord, decode_aggregated, decode_message
from bethos_flink.uids import planner_uids

ROW_KEY_VALUE = Types.ROW_NAMED(["key", "value"], [Types.STRING(), Types.STRING()])
ROW_DEAD_LETTER = ROW_KEY_VALUE

# Keys travel between Python and Java as text, and a missing key as this marker, turned back
# into a null key in SQL. (A compacted topic refuses keyless records, so the aggregated topic
# has none; the ETL's dead letters and a merger reading a non-compacted topic do.)
KEYLESS = "\u2400"

_new_object = object.__new__
_INSERT = RowKind.INSERT


def key_value_row(key: str, value: str) -> Row:
    """`Row(key, value)`, made without Row's __init__ and __setattr__ (Python code, per
    attribute) at a third of their cost: the ETL hands one to the sink per VIN. Row keeps
    its state in its __dict__; tests/unit/bethos_flink/test_rows.py holds the two alike."""
    row = _new_object(Row)
    state = row.__dict__
    state["_values"] = [key, value]
    state["_from_dict"] = False
    state["_row_kind"] = _INSERT
    return row


class BatchedCounter:
    """A Flink counter fed in batches: from Python every `inc` is a call into Java, which costs
    more than the merge of a record. `flush` (on timers and at close) bounds the lag."""

    def __init__(self, counter: Any, every: int = 256) -> None:
        self.counter = counter
        self.every = every
        self.pending = 0

    def inc(self, n: int = 1) -> None:
        self.pending += n
        if self.pending >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.counter.inc(self.pending)
            self.pending = 0


class CounterGauge:
    """A gauge whose value lives in a Flink counter: set from the task's thread, read by Java
    alone. Flink's reporters show a counter like a gauge, under the same name.

    A Python gauge (`group.gauge(name, fn)`) is read by calling into Python from the metric
    reporter's thread. In thread mode a Prometheus scrape that came while a job was being
    cancelled called into the torn-down operator and crashed the whole TaskManager (SIGSEGV
    in `take_gil`, found in a test run): so no Python gauges."""

    def __init__(self, counter: Any) -> None:
        self.counter = counter
        self.value = 0

    def set(self, value: int) -> None:
        delta = int(value) - self.value
        if delta > 0:
            self.counter.inc(delta)
        elif delta < 0:
            self.counter.dec(-delta)
        self.value = int(value)


class TableInput(NamedTuple):
    """A query on one source table; its operators' uids are named after the table."""

    table: str
    query: Table


def union_of_streams(
    t_env: StreamTableEnvironment,
    inputs: Sequence[TableInput],
    select: Callable[[Table], Table],
    row_type: TypeInformation,
) -> DataStream:
    """The union of the inputs as one stream, each translated on its own (`planner_uids`)."""
    streams = []
    for source in inputs:
        with planner_uids(t_env, source.table):
            streams.append(t_env.to_append_stream(select(source.query), row_type))
    first, *rest = streams
    return first.union(*rest) if rest else first


def keyed_by_first_column(
    t_env: StreamTableEnvironment,
    inputs: Sequence[TableInput],
    key_type: TypeInformation,
    element_type: TypeInformation,
) -> KeyedStream:
    """The (key, element) rows of the inputs as a stream of elements keyed by key.

    `DataStream.key_by` runs a Python function on every record only to build such a
    (key, element) row, which it then partitions with Java's `KeyByKeySelector`. Here SQL builds
    the row, so no Python runs before the keyed function (measured: see bethos bench merger).
    """
    row_type = Types.ROW([key_type, element_type])
    stream = union_of_streams(t_env, inputs, lambda query: query, row_type)
    j_keyed = stream._j_data_stream.keyBy(
        get_gateway().jvm.KeyByKeySelector(), Types.ROW([key_type]).get_java_type_info()
    )
    return KeyedStream(j_keyed, element_type, stream)


# The merger's input rows, built by its SQL: (key, value, topic, partition, offset, origin),
# origin telling the aggregated topic from the latest one read at a stateless start.
INPUT_FIELDS = [
    Types.STRING(),
    Types.PRIMITIVE_ARRAY(Types.BYTE()),
    Types.STRING(),
    Types.INT(),
    Types.LONG(),
    Types.STRING(),
]
ROW_INPUT = Types.ROW(INPUT_FIELDS)
ORIGIN_AGGREGATED, ORIGIN_LATEST = "aggregated", "latest"


class Intake:
    """Reads a message of the aggregated topic into its record. A bad one is counted
    (`dead_lettered`, `skipped`), logged (`skip`, `error`) and raised as `DeadLettered`, which
    carries its dead letter: the caller routes that to the dead-letter output."""

    def __init__(
        self, metrics: Any, log: logging.Logger, component: str, keyed_by_message: bool = False
    ) -> None:
        self.dead_lettered = metrics.counter("dead_lettered")
        self.skipped = metrics.counter("skipped")
        self.log, self.component = log, component
        # The keyed merge keeps a VIN's state under the message key (the aggregated topic is
        # keyed by VIN): a keyless message would merge every such VIN into one state.
        self.keyed_by_message = keyed_by_message

    def read(
        self, key: str, raw: bytes | None, topic: str, partition: int, offset: int, now_ms: int
    ) -> AggregatedRecord:
        """The message's record; raises `DeadLettered` for a message that holds none."""
        try:
            if key == KEYLESS and self.keyed_by_message:
                raise RecordError("missing_key", "the message has no key; it must be its VIN")
            return decode_message(None if key == KEYLESS else key, raw, now_ms=now_ms)
        except RecordError as exc:
            raise self.refused(exc, key, raw, topic, partition, offset, now_ms) from None

    def read_latest(
        self, key: str, raw: bytes, topic: str, partition: int, offset: int, now_ms: int
    ) -> AggregatedRecord:
        """A record of the `latest` topic (read at a stateless start); raises `DeadLettered`
        for one it cannot read, which is counted and logged like any other."""
        try:
            return decode_aggregated(raw)
        except RecordError as exc:
            raise self.refused(exc, key, raw, topic, partition, offset, now_ms) from None

    def refused(
        self,
        exc: RecordError,
        key: str,
        raw: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        now_ms: int,
    ) -> DeadLettered:
        """Count and log a message that holds no record; its dead letter, to raise."""
        self.dead_lettered.inc()
        origin: dict[str, object] = {"topic": topic, "partition": partition, "offset": offset}
        if exc.reason == "empty_id":
            self.skipped.inc()
            log_event(self.log, self.component, "skip", logging.INFO, reason=exc.reason, **origin)
        else:
            # A message that could not be read or parsed is an `error` line.
            log_event(
                self.log,
                self.component,
                "error",
                logging.ERROR,
                reason=exc.reason,
                err=exc.detail,
                **origin,
            )
        letter = dead_letter(raw, exc.reason, exc.detail, origin, now_ms)
        return DeadLettered(exc.reason, key, letter)


def add_dead_letter_sink(
    t_env: StreamTableEnvironment, statements: object, stream: DataStream, table: str
) -> None:
    """Route (key, dead letter) rows into an append Kafka table; a KEYLESS key becomes null."""
    _insert_with_bytes_key(t_env, statements, stream, table, f"NULLIF(`key`, '{KEYLESS}')")


def add_append_sink(
    t_env: StreamTableEnvironment, statements: object, stream: DataStream, table: str
) -> None:
    """Route (key, value) rows, each with its key, into an append Kafka table
    (`append_sink_ddl`): the message key is the `key` column, a null value a tombstone."""
    _insert_with_bytes_key(t_env, statements, stream, table, "`key`")


def _insert_with_bytes_key(
    t_env: StreamTableEnvironment, statements: object, stream: DataStream, table: str, key: str
) -> None:
    # Keys travel as text; an append table takes the message key as BYTES.
    t_env.create_temporary_view(f"{table}_rows", t_env.from_data_stream(stream))
    query = f"SELECT CAST({key} AS BYTES) AS `key`, `value` FROM `{table}_rows`"
    statements.add_insert(table, t_env.sql_query(query))  # type: ignore[attr-defined]


def add_sink(
    t_env: StreamTableEnvironment,
    statements: object,
    stream: DataStream,
    table: str,
    changelog: bool = False,
) -> None:
    """Route a stream of (key, value) rows into a registered sink table.

    With `changelog`, the rows' kinds pass through: a DELETE row becomes a tombstone in an
    upsert-kafka table.
    """
    source = t_env.from_changelog_stream(stream) if changelog else t_env.from_data_stream(stream)
    statements.add_insert(table, source)  # type: ignore[attr-defined]
