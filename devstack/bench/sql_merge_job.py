"""The benchmark's baselines: the latest merge written as plain Flink SQL, `GROUP BY vin` over
the `json` format with a typed schema (parsed once per record), in one of two forms
(BETHOS_BENCH_SQL):
- `last_value`: `LAST_VALUE` per signal, the value that arrived last (arrival order, not event
  time; it cannot be merged, so it runs in one phase);
- `event_time`: per signal the value with the newest event time, as the `MAX` of the value
  prefixed with its zero-padded `ts` (mergeable, so mini-batches aggregate in two phases: a
  local pre-aggregation before the shuffle, then the global one). What a Flink user who wants
  the merge rule's first criterion would write.

Started by `bethos bench merger` with `flink run -py`; reads the config in BETHOS_CONFIG and the
consumer group in BETHOS_BENCH_GROUP.
"""

from __future__ import annotations

import os

from bethos.config import MergerSettings, load_settings
from bethos_flink.environment import create_environments
from connectors.kafka.tables import client_options, sql_identifier, sql_literal, with_clause

SIGNALS = [f"s{j:02d}" for j in range(int(os.environ.get("BETHOS_BENCH_SIGNALS", "20")))]
# A ts in epoch ms has at most 19 digits: zero-padded to 20, text order is time order.
TS_DIGITS = 20


def last_value(name: str) -> str:
    return f"LAST_VALUE(`data`.`signals`[{sql_literal(name)}].`value`)"


def newest_by_event_time(name: str) -> str:
    signal = f"`data`.`signals`[{sql_literal(name)}]"
    stamped = f"CONCAT(LPAD(CAST({signal}.`ts` AS STRING), {TS_DIGITS}, '0'), {signal}.`value`)"
    return f"SUBSTRING(MAX({stamped}) FROM {TS_DIGITS + 1})"


def main() -> None:
    settings = load_settings(MergerSettings, os.environ["BETHOS_CONFIG"])
    form = os.environ.get("BETHOS_BENCH_SQL", "last_value")
    _env, t_env = create_environments(settings.flink, settings.checkpoint_interval_ms)
    config = t_env.get_config()
    # Mini-batches: the usual tuning of a SQL aggregation with many updates per key.
    config.set("table.exec.mini-batch.enabled", "true")
    config.set("table.exec.mini-batch.allow-latency", "2 s")
    config.set("table.exec.mini-batch.size", "5000")
    if form == "event_time":
        config.set("table.optimizer.agg-phase-strategy", "TWO_PHASE")
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
    pick = newest_by_event_time if form == "event_time" else last_value
    picks = ", ".join(f"{pick(name)} AS {sql_identifier(name)}" for name in SIGNALS)
    t_env.execute_sql(
        f"INSERT INTO latest_sql SELECT `vin`, {picks} FROM aggregated_in GROUP BY `vin`"
    )


if __name__ == "__main__":
    main()
