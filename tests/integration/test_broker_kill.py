"""Durable topics on three brokers: created with replication 3 and `min.insync.replicas` 2, so a
broker SIGKILLed while both jobs flush loses no acknowledged write, and the latest topic still
equals InfluxDB's ground truth."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata

from bethos.config import EtlSettings, load_settings
from connectors.kafka.admin import create_topics, replication_of
from devstack.chaos import Writer
from devstack.cli import data
from devstack.stack.kafka import KafkaCluster
from devstack.verify import history_regressions
from tests.integration.helpers import topic_configs, wait_for
from tests.integration.helpers import wait_until as wait_until_done
from tests.integration.own_services import throwaway_kafka

pytestmark = pytest.mark.integration

# Beside the test stack's broker (19091) and its controller (29091), below the ephemeral range
# (own_services.throwaway_kafka).
PORT_BASE, CONTROLLER_BASE = 20090, 21090


@pytest.fixture
def three_brokers(tmp_path: Path) -> Iterator[KafkaCluster]:
    with throwaway_kafka(tmp_path / "three-brokers", 3, PORT_BASE, CONTROLLER_BASE) as cluster:
        yield cluster


def metadata_or_none(admin: AdminClient) -> ClusterMetadata | None:
    """The cluster's metadata, or None when the broker asked was the killed one."""
    try:
        return admin.list_topics(timeout=5)
    except KafkaException:
        return None


def replication_factors(admin: AdminClient, topics: list[str]) -> dict[str, int]:
    """Each topic's replica count, once the broker asked knows its partitions."""
    factors: dict[str, int] = {}
    deadline = time.monotonic() + 30
    while len(factors) < len(topics) and time.monotonic() < deadline:
        metadata = metadata_or_none(admin)
        known = metadata.topics if metadata is not None else {}
        for name in topics:
            if name in known and known[name].partitions:
                factors[name] = replication_of(metadata, name)
        time.sleep(0.5)
    return factors


def test_a_broker_killed_during_flushes_loses_nothing(
    three_brokers: KafkaCluster,
    pipeline_configs: tuple[Path, Path],
    submit: Callable[..., str],
) -> None:
    brokers = three_brokers.bootstrap_servers()
    paths = []
    for path in pipeline_configs:
        doc = yaml.safe_load(path.read_text())
        doc["kafka"] = {"brokers": brokers}
        if "influxdb" in doc:  # the ETL's: its very late readings are found within 10 s
            doc["reconcile_interval"] = "10s"
        moved = path.with_name(f"three-{path.name}")
        moved.write_text(yaml.safe_dump(doc))
        paths.append(moved)
    etl_config, merger_config = paths
    settings = load_settings(EtlSettings, etl_config)
    create_topics(settings.kafka, settings.topics)
    topics = settings.topics
    admin = AdminClient({"bootstrap.servers": brokers})
    wanted = [topics.aggregated, topics.latest, topics.dlq]
    assert topic_configs(admin, wanted, "min.insync.replicas") == {
        topics.aggregated: "2",
        topics.latest: "2",
        topics.dlq: "2",
    }

    data.generate(settings, vins=50, rounds=3, round_interval_ms=5_000)
    submit("etl", etl_config)
    submit("latest_merger", merger_config)
    assert wait_for(lambda: data.verify(settings)[2], timeout=180) == []

    # New and late readings for 40 s; the merger flushes every 3 s. Broker 2 is SIGKILLed
    # after 10 s and started again 15 s later.
    writer = Writer(settings, random.Random(4), seconds=40)
    writer.thread.start()
    time.sleep(10)
    pid = three_brokers.processes.pid("kafka-2")
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    # Topics created while it is down (fenced) still get 3 replicas and 2 in sync, not 2 and 1
    # for good: the down broker's replicas catch up when it returns.
    def answering() -> int | None:
        metadata = metadata_or_none(admin)
        return None if metadata is None else len(metadata.brokers)

    wait_until_done(lambda: answering() == 2, timeout=30, interval=0.5)  # fenced after ~9 s
    assert answering() == 2
    more = topics.model_copy(
        update={
            key: f"{getattr(topics, key)}-while-down" for key in ("aggregated", "latest", "dlq")
        }
    )
    create_topics(settings.kafka, more)
    created = [more.aggregated, more.latest, more.dlq]
    assert set(topic_configs(admin, created, "min.insync.replicas").values()) == {"2"}
    assert replication_factors(admin, created) == dict.fromkeys(created, 3)
    time.sleep(max(0.0, killed_at + 15 - time.monotonic()))
    three_brokers.start()
    writer.thread.join()
    assert writer.written > 100
    assert wait_for(lambda: data.verify(settings)[2], timeout=180) == []
    # Read from the beginning (read_committed), the latest topic never took a value back.
    messages, taken_back = history_regressions(settings)
    assert messages > 0 and taken_back == []
