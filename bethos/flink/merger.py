"""Flink wiring of the latest merger: Kafka -> the shared merge graph (`bethos.flink.merge`) ->
the strategy's own wiring, named by its entry in `bethos.strategy_registry`."""

from __future__ import annotations

from pyflink.table import StreamTableEnvironment

from bethos.config import MergerSettings
from bethos.exceptions import ConfigError
from bethos.flink.environment import create_environments
from bethos.flink.merge import MergerGraph
from bethos.flink.rows import KEYLESS, ORIGIN_AGGREGATED, ORIGIN_LATEST, TableInput
from bethos.strategy_registry import STRATEGIES
from connectors.kafka.tables import source_table_ddl


def _inputs(t_env: StreamTableEnvironment, settings: MergerSettings) -> list[TableInput]:
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
    env, t_env = create_environments(settings.flink)
    graph = MergerGraph.create(t_env, settings, _inputs(t_env, settings))
    wire(graph, options)
    return env, graph.statements
