"""The benchmark's baseline: the latest merge written as Flink SQL, `GROUP BY vin` with
`LAST_VALUE` per signal (arrival order, not event time: SQL has no cheaper per-column rule).

Started by `bethos bench merger` with `flink run -py`; reads the config in BETHOS_CONFIG and the
consumer group in BETHOS_BENCH_GROUP.
"""

from __future__ import annotations

import os

from bethos.config import MergerSettings, load_settings
from bethos_flink.environment import create_environments
from connectors.kafka.tables import client_options, sql_identifier, sql_literal, with_clause

SIGNALS = [f"s{j:02d}" for j in range(int(os.environ.get("BETHOS_BENCH_SIGNALS", "20")))]


def main() -> None:
    settings = load_settings(MergerSettings, os.environ["BETHOS_CONFIG"])
    _env, t_env = create_environments(settings.flink)
    config = t_env.get_config()
    # Mini-batches: the usual tuning of a SQL aggregation with many updates per key.
    config.set("table.exec.mini-batch.enabled", "true")
    config.set("table.exec.mini-batch.allow-latency", "2 s")
    config.set("table.exec.mini-batch.size", "5000")
    source = {
        "connector": "kafka",
        "topic": settings.topics.aggregated,
        **client_options(settings.kafka),
        "properties.group.id": os.environ["BETHOS_BENCH_GROUP"],
        "scan.startup.mode": "earliest-offset",
        "value.format": "json",
        "value.json.ignore-parse-errors": "true",
    }
    t_env.execute_sql(
        "CREATE TEMPORARY TABLE aggregated_in (`vin` STRING, `data` ROW<`id` STRING, "
        "`signals` MAP<STRING, ROW<`value` STRING, `ts` BIGINT>>>) "
        f"WITH ({with_clause(source)})"
    )
    sink = {
        "connector": "upsert-kafka",
        "topic": f"{settings.topics.latest}.sql",
        **client_options(settings.kafka, producer=True),
        "key.format": "raw",
        "value.format": "json",
    }
    columns = ", ".join(f"{sql_identifier(name)} STRING" for name in SIGNALS)
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE latest_sql (`vin` STRING, {columns}, "
        f"PRIMARY KEY (`vin`) NOT ENFORCED) WITH ({with_clause(sink)})"
    )
    picks = ", ".join(
        f"LAST_VALUE(`data`.`signals`[{sql_literal(name)}].`value`) AS {sql_identifier(name)}"
        for name in SIGNALS
    )
    t_env.execute_sql(
        f"INSERT INTO latest_sql SELECT `vin`, {picks} FROM aggregated_in GROUP BY `vin`"
    )


if __name__ == "__main__":
    main()
