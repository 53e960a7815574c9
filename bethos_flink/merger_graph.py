"""The latest merger's job graph: its inputs (the aggregated topic, and the latest topic at a
stateless start), `MergerGraph`, the graph under construction with the sinks every strategy
shares and the keyed merge (`bethos_flink.merge_function`), and `build`, which hands it to the
strategy's own wiring, named by its entry in `bethos.strategy_registry`."""

from __future__ import annotations

from dataclasses import dataclass

from pyflink.common import Types
from pyflink.datastream import DataStream
from pyflink.table import StreamTableEnvironment
from pyflink.table.expressions import col

from bethos.config import MergerSettings
from bethos.exceptions import ConfigError
from bethos.strategies.flushing import FlushLogic
from bethos.strategy_registry import STRATEGIES
from bethos_flink.environment import create_environments
from bethos_flink.merge_function import DEAD_LETTERS, MERGE_UID, MergeFunction
from bethos_flink.rows import (
    KEYLESS,
    ORIGIN_AGGREGATED,
    ORIGIN_LATEST,
    ROW_INPUT,
    ROW_KEY_VALUE,
    TableInput,
    add_dead_letter_sink,
    add_sink,
    keyed_by_first_column,
    union_of_streams,
)
from bethos_flink.uids import SinkStatements
from connectors.kafka.tables import append_sink_ddl, source_table_ddl, upsert_sink_ddl


@dataclass
class MergerGraph:
    """The merger's graph under construction: its input tables (one (key, ROW_INPUT) row per
    message), the sink statements, and the sinks every strategy shares."""

    t_env: StreamTableEnvironment
    statements: SinkStatements
    settings: MergerSettings
    inputs: list[TableInput]
    dead_letters_routed: bool = False

    @classmethod
    def create(
        cls, t_env: StreamTableEnvironment, settings: MergerSettings, inputs: list[TableInput]
    ) -> MergerGraph:
        topics, kafka = settings.topics, settings.kafka
        t_env.execute_sql(append_sink_ddl("dead_letters_out", topics.dlq, kafka))
        return cls(t_env, SinkStatements(t_env), settings, inputs)

    def records(self) -> DataStream:
        """The input as a plain stream of ROW_INPUT rows (for a strategy that keys them
        itself)."""
        return union_of_streams(
            self.t_env, self.inputs, lambda query: query.select(col("element").flatten), ROW_INPUT
        )

    def merge_per_vin(
        self,
        flush: FlushLogic,
        tombstones_as_delete: bool = True,
        messages_downstream: bool = False,
    ) -> DataStream:
        """The keyed merge with its timer flush: a stream of (VIN, latest record) rows, a
        tombstone as a null value (a DELETE row with `tombstones_as_delete`). Its dead letters
        go to the dead-letter topic."""
        merged = (
            keyed_by_first_column(self.t_env, self.inputs, Types.STRING(), ROW_INPUT)
            .process(
                MergeFunction(
                    flush,
                    tombstones_as_delete,
                    messages_downstream,
                    self.settings.limits.build(),
                ),
                output_type=ROW_KEY_VALUE,
            )
            .uid(MERGE_UID)
            .name("merge per VIN")
        )
        self.dead_letters(merged.get_side_output(DEAD_LETTERS))
        return merged

    def dead_letters(self, stream: DataStream) -> None:
        """Send the (key, dead letter) rows of the whole graph to the dead-letter topic: call it
        once, before adding the strategy's sink (the order of the inserts shapes the SQL
        operators' generated ids, which savepoints are matched by)."""
        if self.dead_letters_routed:
            raise ValueError("the dead letters are routed already: union the streams first")
        add_dead_letter_sink(self.t_env, self.statements, stream, "dead_letters_out")
        self.dead_letters_routed = True

    def to_latest_topic(self, stream: DataStream) -> None:
        """Upsert (VIN, latest record) rows into the compacted `latest` topic; DELETE rows
        become tombstones."""
        topics, kafka = self.settings.topics, self.settings.kafka
        prefix = self.settings.transactional_id_prefix("latest")
        self.t_env.execute_sql(upsert_sink_ddl("latest_out", topics.latest, kafka, prefix))
        add_sink(self.t_env, self.statements, stream, "latest_out", changelog=True)


def merger_inputs(t_env: StreamTableEnvironment, settings: MergerSettings) -> list[TableInput]:
    """The merger's inputs: the aggregated topic, and with `bootstrap_from_latest` the `latest`
    topic up to its end at start. One (key, ROW_INPUT) row per message."""
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

    def select(table: str, origin: str) -> TableInput:
        query = (
            f"SELECT {key} AS `key`, ROW({key}, `value`, `topic`, `partition`, `offset`, "
            f"'{origin}') AS `element` FROM {table}"
        )
        return TableInput(table, t_env.sql_query(query))

    inputs = [select("aggregated_in", ORIGIN_AGGREGATED)]
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
        inputs.append(select("latest_in", ORIGIN_LATEST))
    return inputs


def build(settings: MergerSettings):  # type: ignore[no-untyped-def]
    """The merger's job graph; returns the environment and the statement set to execute."""
    options = settings.latest_merger
    strategy = STRATEGIES.get(options.strategy)
    if strategy is None:
        raise ConfigError(
            f"latest_merger.strategy: no Flink wiring for {options.strategy!r}; "
            f"wired: {', '.join(STRATEGIES)}"
        )
    wire = strategy.wiring()
    env, t_env = create_environments(settings.flink, settings.checkpoint_interval_ms)
    graph = MergerGraph.create(t_env, settings, merger_inputs(t_env, settings))
    wire(graph, options)
    return env, graph.statements
