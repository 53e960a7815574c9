"""With `kafka.security` set, the jobs' graphs carry the Java client's keys, and neither the
execution plan (what the dashboard and REST show) nor Flink's errors about a table show the
password."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bethos.config import EtlSettings, MergerSettings, load_settings
from connectors.kafka.tables import source_table_ddl

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "d41d8cd98f00b204e980"
SASL = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "bethos",
    "KAFKA_SASL_PASSWORD": f"pw-{TOKEN}",
    "INFLUXDB_PASSWORD": "influx",
}


@pytest.mark.timeout(300)
def test_secured_graphs_compile_and_their_plans_hold_no_password() -> None:
    from bethos_flink import etl_graph, merger_graph

    for build, model, config in (
        (merger_graph.build, MergerSettings, "config/latest_merger.yaml"),
        (etl_graph.build, EtlSettings, "config/etl.yaml"),
    ):
        settings = load_settings(model, ROOT / config, SASL)
        env, statements = build(settings)  # type: ignore[operator]
        statements.attach_as_datastream()
        plan = json.loads(env.get_execution_plan())
        assert plan["nodes"]
        assert TOKEN not in json.dumps(plan)


@pytest.mark.timeout(300)
def test_flink_masks_the_jaas_line_when_it_lists_a_table_options() -> None:
    from bethos.config import FlinkSettings
    from bethos_flink.environment import create_environments

    settings = load_settings(MergerSettings, ROOT / "config/latest_merger.yaml", SASL)
    _, t_env = create_environments(FlinkSettings(), 10_000)
    ddl = source_table_ddl("broken", "topic", settings.kafka, "g", from_earliest=True)
    t_env.execute_sql(ddl.replace("'earliest-offset'", "'no-such-mode'"))
    with pytest.raises(Exception, match="Table options are") as failure:
        t_env.sql_query("SELECT * FROM broken").explain()
    text = str(failure.value)
    assert "'properties.sasl.jaas.config'='******'" in text
    assert TOKEN not in text
