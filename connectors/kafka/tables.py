"""Flink SQL DDL for the Kafka topics, used by both jobs through the Table API.

The Table connectors are used because they map a column to the message key (the Python
`KafkaSink` serializes the whole element as the key) and DELETE rows to tombstones.
"""

from __future__ import annotations

from collections.abc import Mapping

from bethos.config import KafkaSettings


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def with_clause(options: Mapping[str, str]) -> str:
    return ",\n  ".join(f"{sql_literal(k)} = {sql_literal(v)}" for k, v in options.items())


# Producer defaults for the sinks: JSON records compress several-fold, and on a small machine
# the brokers' disk and replication, not the job, bound the write rate (measured: 100k records
# of ~1 KiB took 5.5 s uncompressed, 2.0 s with these). User properties override them.
PRODUCER_DEFAULTS = {"compression.type": "lz4", "linger.ms": "20", "batch.size": "262144"}


def client_options(kafka: KafkaSettings, producer: bool = False) -> dict[str, str]:
    props = (
        {**PRODUCER_DEFAULTS, **kafka.java_client_properties()}
        if producer
        else {**kafka.java_client_properties()}
    )
    return {f"properties.{k}": v for k, v in props.items()}


# Raw key and value columns, the value without the key (`key.fields`, where given, names the
# key column of a plain `kafka` table; upsert-kafka takes it from the primary key).
RAW_KEY_VALUE = {
    "key.format": "raw",
    "value.format": "raw",
    "value.fields-include": "EXCEPT_KEY",
}


def table_ddl(table: str, columns: str, options: Mapping[str, str]) -> str:
    return (
        f"CREATE TEMPORARY TABLE {sql_identifier(table)} (\n  {columns}\n"
        f") WITH (\n  {with_clause(options)}\n)"
    )


def source_table_ddl(
    table: str,
    topic: str,
    kafka: KafkaSettings,
    group_id: str,
    from_earliest: bool,
    bounded: bool = False,
) -> str:
    """Raw key and value bytes plus the record's origin, for decoding and dead letters.

    A `bounded` source stops at the end offsets it finds at start; restored from a checkpoint
    after it finished, it reads nothing again.
    """
    options = {
        "connector": "kafka",
        "topic": topic,
        **client_options(kafka),
        "properties.group.id": group_id,
        # What an exactly-once writer has not committed (or aborted) is not read.
        "properties.isolation.level": "read_committed",
        "scan.startup.mode": "earliest-offset" if from_earliest else "latest-offset",
        **({"scan.bounded.mode": "latest-offset"} if bounded else {}),
        "key.fields": "key",
        **RAW_KEY_VALUE,
    }
    columns = (
        "`key` BYTES,\n  `value` BYTES,\n"
        "  `topic` STRING METADATA VIRTUAL,\n"
        "  `partition` INT METADATA VIRTUAL,\n"
        "  `offset` BIGINT METADATA VIRTUAL"
    )
    return table_ddl(table, columns, options)


# A transaction open longer than this is aborted by the broker; Flink's sink asks for an hour
# by default, which brokers refuse (their `transaction.max.timeout.ms` defaults to 15 min).
TRANSACTION_TIMEOUT_MS = 900_000
# How long a transactional producer waits for the transaction coordinator (`max.block.ms`,
# 60 s by default). When the brokers stop answering, a failed writer's task aborts its open
# transaction while it closes, and a timeout there is fatal to the whole TaskManager (Flink
# treats an exception in a task's failure handling so). Waiting longer lets the brokers come
# back first; it stays under Flink's `task.cancellation.timeout` (180 s), past which a task
# that does not stop when cancelled is fatal too.
COORDINATOR_WAIT_MS = 150_000


def delivery_options(transactional_id_prefix: str | None) -> dict[str, str]:
    """At least once, or, with a transactional id prefix, exactly once: the sink writes in
    Kafka transactions committed when a checkpoint completes, so a `read_committed` reader
    sees only what a completed checkpoint covers, never what a restore then takes back. The
    prefix must be stable across restarts and unique among the jobs writing to the cluster."""
    if transactional_id_prefix is None:
        return {"sink.delivery-guarantee": "at-least-once"}
    return {
        "sink.delivery-guarantee": "exactly-once",
        "sink.transactional-id-prefix": transactional_id_prefix,
        "properties.transaction.timeout.ms": str(TRANSACTION_TIMEOUT_MS),
        "properties.max.block.ms": str(COORDINATOR_WAIT_MS),
    }


def upsert_sink_ddl(
    table: str, topic: str, kafka: KafkaSettings, transactional_id_prefix: str | None = None
) -> str:
    """Key = the `key` column (the VIN), value = the `value` column; DELETE -> tombstone.
    Exactly once with a transactional id prefix (`delivery_options`)."""
    options = {
        "connector": "upsert-kafka",
        "topic": topic,
        **client_options(kafka, producer=True),
        **delivery_options(transactional_id_prefix),
        **RAW_KEY_VALUE,
    }
    columns = "`key` STRING,\n  `value` STRING,\n  PRIMARY KEY (`key`) NOT ENFORCED"
    return table_ddl(table, columns, options)


def append_sink_ddl(
    table: str, topic: str, kafka: KafkaSettings, transactional_id_prefix: str | None = None
) -> str:
    """An append-only topic with an optional key (the dead-letter topic, inline batches).
    Exactly once with a transactional id prefix (`delivery_options`)."""
    options = {
        "connector": "kafka",
        "topic": topic,
        **client_options(kafka, producer=True),
        **delivery_options(transactional_id_prefix),
        "key.fields": "key",
        **RAW_KEY_VALUE,
    }
    return table_ddl(table, "`key` BYTES,\n  `value` STRING", options)
