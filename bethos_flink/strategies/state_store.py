"""Flink wiring of `state_store`, both of its jobs:

- in the merger, `StoreWriter` (uid `latest-merger-store-writer`) writes the merge's emissions
  to the store, each batch one atomic, pipelined write (`wire`);
- the publisher job (`build_publisher`, `jobs/state_store_publisher.py`): ticks -> one tick
  per shard of the store, keyed by shard -> read the shard's changes -> the `latest` topic. The
  shards are spread over the job's subtasks like any key, so each subtask publishes its share
  and a rescale moves shards with their state.

The publisher runs and fails apart from the merger. Each shard's cursor (the newest version of
the shard published) lives in keyed state; the Kafka sink flushes at each checkpoint, so a
restart from a checkpoint publishes again at most what came after it (at least once; the topic
is keyed by VIN and compacted, so a repeat changes nothing). The logic is
`bethos.strategies.state_store.StoreLogic`; the store is `connectors.store`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence

from pyflink.common import Row, RowKind, Types
from pyflink.datastream import FlatMapFunction, KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from bethos.config import MergerSettings
from bethos.exceptions import ConfigError, StoreError
from bethos.logevents import log_event
from bethos.strategies.flushing import Pending, delivery_bucket
from bethos.strategies.state_store import PublishPlan, StateStore, StateStoreSettings, StoreLogic
from bethos_flink.delivery import BufferedDelivery
from bethos_flink.environment import create_environments, ensure_logging
from bethos_flink.merger_graph import MergerGraph
from bethos_flink.rows import ROW_KEY_VALUE, CounterGauge, add_sink
from bethos_flink.uids import SinkStatements, planner_uids
from connectors.kafka.tables import upsert_sink_ddl
from connectors.store import ShardedStore, open_store
from connectors.store.base import StoreEntry

STORE_WRITER_UID = "latest-merger-store-writer"
PUBLISHER_UID = "state-store-publisher"
SHARD_TICKS_UID = "state-store-publisher-shard-ticks"
publisher_log = logging.getLogger("bethos.state_store_publisher")
PUBLISHER = "state_store_publisher"

# One in-memory store per key prefix, shard count and process: with Flink's thread mode every
# job on a TaskManager shares one interpreter, so the publisher job sees what the merger wrote.
_MEMORY_STORES: dict[tuple[str, int], ShardedStore] = {}


def store_for(settings: StateStoreSettings) -> ShardedStore:
    if settings.backend == "memory":
        key = (settings.key_prefix, settings.shards)
        if key not in _MEMORY_STORES:
            _MEMORY_STORES[key] = open_store("memory", "", settings.key_prefix, shards=key[1])
        return _MEMORY_STORES[key]
    password = settings.password.get_secret_value() if settings.password else None
    return open_store(
        "redis",
        settings.redis_url,
        settings.key_prefix,
        password,
        settings.redis_cluster,
        settings.shards,
    )


class StoreWriter(BufferedDelivery):
    """`state_store`: each batch is one atomic, pipelined write to the store."""

    def __init__(self, settings: StateStoreSettings, logic: StoreLogic) -> None:
        super().__init__(logic.delivery)
        self.settings = settings
        self.logic = logic

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)
        self.store = store_for(self.settings)

    def close(self) -> None:
        if self.settings.backend != "memory":
            self.store.close()

    def deliver(self, bucket: int, entries: Sequence[Pending]) -> list[Row]:
        # The shard count divides the buckets, so a bucket's entries lie in one shard.
        for write in self.logic.writes(entries):
            self.store.write([StoreEntry(vin, value) for vin, value in write])
        return []


def wire(graph: MergerGraph, options: StateStore) -> None:
    logic = options.build()
    store = options.state_store
    (
        graph.merge_per_vin(logic.flush, tombstones_as_delete=False)
        .key_by(lambda row: delivery_bucket(row[0]), key_type=Types.INT())
        .process(StoreWriter(store, logic), output_type=ROW_KEY_VALUE)
        .uid(STORE_WRITER_UID)
        .name(f"write to the {store.backend} store")
    )


class ShardTicks(FlatMapFunction):  # type: ignore[misc]
    """Each tick once per shard of the store: the publisher is keyed by shard."""

    def __init__(self, shards: int) -> None:
        self.shards = shards

    def flat_map(self, value: object) -> Iterator[int]:
        yield from range(self.shards)


class PublishFunction(KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by shard: on a tick, when the shard's `publish_interval` has passed, emits its
    changes after its cursor."""

    def __init__(self, settings: StateStoreSettings, plan: PublishPlan) -> None:
        self.settings = settings
        self.plan = plan

    def open(self, runtime_context: RuntimeContext) -> None:
        ensure_logging()
        self.store = store_for(self.settings)
        self.cursor = runtime_context.get_state(ValueStateDescriptor("cursor", Types.LONG()))
        self.next_at = runtime_context.get_state(ValueStateDescriptor("next_at", Types.LONG()))
        # The shard's epoch the cursor belongs to (None: restored from before epochs).
        self.epoch = runtime_context.get_state(ValueStateDescriptor("epoch", Types.STRING()))
        metrics = runtime_context.get_metrics_group()
        self.published = metrics.counter("published")
        self.tombstones = metrics.counter("tombstones")
        self.errors = metrics.counter("errors")
        self.cursor_gauge = CounterGauge(metrics.counter("cursor"))
        self.shards_gauge = CounterGauge(metrics.counter("shards"))
        # The cursor of each shard this subtask has published, for the gauge.
        self.cursors: dict[int, int] = {}

    def close(self) -> None:
        if self.settings.backend != "memory":
            self.store.close()

    def process_element(self, shard: int, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        now = ctx.timer_service().current_processing_time()
        if not self.plan.due(now, self.next_at.value()):
            return
        self.next_at.update(now + self.plan.interval_ms)
        store = self.store.shard(shard)
        cursor = self.cursor.value() or 0
        started = time.monotonic()
        published = tombstones = 0
        try:
            epoch, head = store.epoch(), store.head()
            seen_epoch = self.epoch.value()
            if self.plan.wiped(cursor, head, seen_epoch, epoch):
                log_event(
                    publisher_log,
                    PUBLISHER,
                    "store_reset",
                    logging.WARNING,
                    shard=shard,
                    cursor=cursor,
                    head=head,
                )
                cursor = 0
                self.cursor.update(0)
            if epoch and epoch != seen_epoch:
                self.epoch.update(epoch)
            for page in self.plan.pages(store, cursor):
                for change in page:
                    if change.value is None:
                        row = Row(change.vin, None)
                        row.set_row_kind(RowKind.DELETE)
                        tombstones += 1
                    else:
                        row = Row(change.vin, change.value.decode())
                        published += 1
                    yield row
                cursor = page[-1].version
                self.cursor.update(cursor)
        except StoreError as exc:
            self.errors.inc()
            # The cursor stays at the last page published; the next tick goes on from there.
            self.next_at.update(now)
            log_event(
                publisher_log,
                PUBLISHER,
                "error",
                logging.ERROR,
                shard=shard,
                err=str(exc),
                cursor=cursor,
            )
        self.cursors[shard] = cursor
        self.cursor_gauge.set(sum(self.cursors.values()))
        self.shards_gauge.set(len(self.cursors))
        self.published.inc(published)
        self.tombstones.inc(tombstones)
        if published or tombstones:
            log_event(
                publisher_log,
                PUBLISHER,
                "publish",
                shard=shard,
                published=published,
                tombstones=tombstones,
                cursor=cursor,
                duration_ms=int((time.monotonic() - started) * 1000),
            )


def build_publisher(settings: MergerSettings):  # type: ignore[no-untyped-def]
    """The publisher job's graph; returns the environment and the statement set to execute."""
    options = settings.latest_merger
    if not isinstance(options, StateStore):
        raise ConfigError(
            f"latest_merger.strategy: the publisher serves 'state_store', not {options.strategy!r}"
        )
    env, t_env = create_environments(settings.flink, settings.checkpoint_interval_ms)
    t_env.execute_sql(
        "CREATE TEMPORARY TABLE ticks (n INT) WITH ("
        "'connector' = 'datagen', 'rows-per-second' = '1')"
    )
    prefix = settings.transactional_id_prefix("publisher")
    t_env.execute_sql(upsert_sink_ddl("latest_out", settings.topics.latest, settings.kafka, prefix))
    store = options.state_store
    with planner_uids(t_env, "ticks"):
        ticks = t_env.to_data_stream(t_env.from_path("ticks"))
    published = (
        ticks.flat_map(ShardTicks(store.shards), output_type=Types.INT())
        .uid(SHARD_TICKS_UID)
        .name(f"tick each of {store.shards} shards")
        .key_by(lambda shard: shard, key_type=Types.INT())
        .process(PublishFunction(store, options.build().publish), output_type=ROW_KEY_VALUE)
        .uid(PUBLISHER_UID)
        .name(f"publish the {store.backend} store")
    )
    statements = SinkStatements(t_env)
    add_sink(t_env, statements, published, "latest_out", changelog=True)
    return env, statements
