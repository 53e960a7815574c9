"""The part of both jobs' configs that points them at the local stack: Kafka, topics of their
own, an InfluxDB database and pods of their own, a consumer group. The tests, `bethos chaos` and
the latency benchmark add their timings to these documents and write them as YAML."""

from __future__ import annotations

from typing import Any

from devstack.stack.influxdb import INFLUXDB_PORT
from devstack.stack.local import Stack


def pipeline_docs(
    stack: Stack,
    topic_prefix: str,
    database: str,
    pods: list[str],
    group: str,
    partitions: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(ETL, merger) documents on topics `<topic_prefix>.aggregated`, `.latest` and `.dlq`."""
    topics: dict[str, Any] = {
        "aggregated": f"{topic_prefix}.aggregated",
        "latest": f"{topic_prefix}.latest",
        "dlq": f"{topic_prefix}.dlq",
    }
    if partitions is not None:
        topics["partitions"] = partitions
    kafka = {"brokers": stack.bootstrap_servers()}
    influxdb = {"url": f"http://127.0.0.1:{INFLUXDB_PORT}", "database": database, "pods": pods}
    etl = {"kafka": kafka, "topics": topics, "influxdb": influxdb}
    merger = {"kafka": kafka, "topics": topics, "consumer_group": group}
    return etl, merger
