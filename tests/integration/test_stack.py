"""The stack and the topics command against the real servers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from bethos.config import MergerSettings, load_settings
from connectors.kafka.admin import create_topics
from devstack.stack import Stack
from tests.integration.helpers import topic_configs

pytestmark = pytest.mark.integration


def test_a_broker_that_cannot_start_says_why_in_its_log(stack: Stack) -> None:
    """Kafka logs through SLF4J 1.7 and log4j. With a binding SLF4J 1.7 cannot see, every line
    of the brokers, errors included, went nowhere."""
    command = stack.kafka.java_command("kafka.Kafka", "/nonexistent/server.properties", heap="128m")
    ran = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    output = ran.stdout + ran.stderr
    assert ran.returncode != 0
    assert "NOP" not in output
    assert "ERROR Exiting Kafka due to fatal exception" in output


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
