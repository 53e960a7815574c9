"""Flink wiring of the `state_store` publisher: ticks -> read the store's changes -> Kafka.

The publisher runs and fails apart from the merger. Its cursor (the newest store version
published) lives in keyed state; the Kafka sink flushes at each checkpoint, so a restart from
a checkpoint publishes again at most what came after it (at least once; the topic is keyed by
VIN and compacted, so a repeat changes nothing).
"""

from __future__ import annotations

import logging
import time

from pyflink.common import Row, RowKind, Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from bethos.config import MergerSettings
from bethos.exceptions import ConfigError, StoreError
from bethos.flink.delivery import store_for
from bethos.flink.environment import create_environments, ensure_logging
from bethos.flink.rows import ROW_KEY_VALUE, add_sink
from bethos.logevents import log_event
from bethos.strategies.state_store import StateStore, StateStoreSettings
from connectors.kafka.tables import upsert_sink_ddl

log = logging.getLogger("bethos.state_store_publisher")
COMPONENT = "state_store_publisher"
PUBLISHER_UID = "state-store-publisher"
PAGE = 5_000


class PublishFunction(KeyedProcessFunction):  # type: ignore[misc]
    def __init__(self, settings: StateStoreSettings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        ensure_logging()
        self.store = store_for(self.settings)
        self.cursor = runtime_context.get_state(ValueStateDescriptor("cursor", Types.LONG()))
        self.next_at = runtime_context.get_state(ValueStateDescriptor("next_at", Types.LONG()))
        metrics = runtime_context.get_metrics_group()
        self.published = metrics.counter("published")
        self.tombstones = metrics.counter("tombstones")
        self.errors = metrics.counter("errors")
        self.cursor_gauge = 0
        metrics.gauge("cursor", lambda: self.cursor_gauge)

    def close(self) -> None:
        if self.settings.backend != "memory":
            self.store.close()

    def process_element(self, tick: object, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        now = ctx.timer_service().current_processing_time()
        if now < (self.next_at.value() or 0):
            return
        self.next_at.update(now + self.settings.publish_interval)
        cursor = self.cursor.value() or 0
        started = time.monotonic()
        published = tombstones = 0
        try:
            head = self.store.head()
            if head < cursor:
                # The store was wiped (a Redis without persistence restarted): its versions
                # start again from 1, so publish it all again rather than wait for `cursor`.
                log_event(log, COMPONENT, "store_reset", logging.WARNING, cursor=cursor, head=head)
                cursor = 0
                self.cursor.update(0)
            while True:
                changes = self.store.changes_since(cursor, PAGE)
                for change in changes:
                    if change.value is None:
                        row = Row(change.vin, None)
                        row.set_row_kind(RowKind.DELETE)
                        tombstones += 1
                    else:
                        row = Row(change.vin, change.value.decode())
                        published += 1
                    yield row
                if changes:
                    cursor = changes[-1].version
                    self.cursor.update(cursor)
                if len(changes) < PAGE:
                    break
        except StoreError as exc:
            self.errors.inc()
            # The cursor stays at the last page published; the next tick goes on from there.
            self.next_at.update(now)
            log_event(log, COMPONENT, "error", logging.ERROR, err=str(exc), cursor=cursor)
        self.cursor_gauge = cursor
        self.published.inc(published)
        self.tombstones.inc(tombstones)
        if published or tombstones:
            log_event(
                log,
                COMPONENT,
                "publish",
                published=published,
                tombstones=tombstones,
                cursor=cursor,
                duration_ms=int((time.monotonic() - started) * 1000),
            )


def build(settings: MergerSettings):  # type: ignore[no-untyped-def]
    env, t_env = create_environments(settings.flink)
    t_env.execute_sql(
        "CREATE TEMPORARY TABLE ticks (n INT) WITH ("
        "'connector' = 'datagen', 'rows-per-second' = '1')"
    )
    t_env.execute_sql(upsert_sink_ddl("latest_out", settings.topics.latest, settings.kafka))
    options = settings.latest_merger
    if not isinstance(options, StateStore):
        raise ConfigError(
            f"latest_merger.strategy: the publisher serves 'state_store', not {options.strategy!r}"
        )
    store = options.state_store
    published = (
        t_env.to_data_stream(t_env.from_path("ticks"))
        .key_by(lambda _: 0, key_type=Types.INT())
        .process(PublishFunction(store), output_type=ROW_KEY_VALUE)
        .uid(PUBLISHER_UID)
        .name(f"publish the {store.backend} store")
    )
    statements = t_env.create_statement_set()
    add_sink(t_env, statements, published, "latest_out", changelog=True)
    return env, statements
