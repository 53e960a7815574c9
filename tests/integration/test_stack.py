"""The stack and the topics command against the real servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from bethos.config import MergerSettings, load_settings
from connectors.kafka.admin import create_topics
from devstack.stack import Stack
from tests.integration.helpers import topic_configs

pytestmark = pytest.mark.integration


def test_every_service_is_up(stack: Stack) -> None:
    running = {s.name: s.running for s in stack.status()}
    # Prometheus is listed whenever it runs, and the monitoring tests start it on this same
    # stack, maybe before this test: it is not one of the services `up` starts.
    running.pop("prometheus", None)
    assert running == {
        **{f"kafka-{i}": True for i in range(1, stack.broker_count + 1)},
        "influxdb": True,
        "redis": True,
        "flink": True,
    }


def test_topics_are_created_idempotently_with_compaction(
    pipeline_configs: tuple[Path, Path],
) -> None:
    settings = load_settings(MergerSettings, pipeline_configs[1])
    again = create_topics(settings.kafka, settings.topics)
    assert set(again.values()) == {"exists"}
    admin = AdminClient({"bootstrap.servers": settings.kafka.brokers})
    topics = settings.topics
    wanted = [topics.aggregated, topics.latest, topics.dlq]
    assert topic_configs(admin, wanted, "cleanup.policy") == {
        topics.aggregated: "compact",
        topics.latest: "compact",
        topics.dlq: "delete",
    }
