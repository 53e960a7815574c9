"""Topic creation (idempotent) for the three topics (docs/CONTRACT.md, "Topics")."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from bethos.config import KafkaSettings, TopicSettings
from bethos.exceptions import BethosError
from connectors.kafka import clients

SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    config: dict[str, str]


def topic_specs(topics: TopicSettings) -> list[TopicSpec]:
    compact = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
    return [
        TopicSpec(topics.aggregated, compact),
        TopicSpec(topics.latest, compact),
        TopicSpec(topics.dlq, {"cleanup.policy": "delete", "retention.ms": str(SEVEN_DAYS_MS)}),
    ]


def durability(replication: int) -> dict[str, str]:
    """`min.insync.replicas` for a topic of that replication factor.

    The sinks write with `acks=all`, which waits only for the replicas in sync: with the
    broker's default of 1, a write acknowledged by the leader alone is lost when that leader
    dies. At replication 3, two replicas must hold every acknowledged write, so one broker may
    fail without loss, and writes go on while it is down.
    """
    return {"min.insync.replicas": "2" if replication >= 3 else "1"}


def replication_for_new_topics(admin: Any, metadata: Any, timeout: float) -> int:
    """The cluster's `default.replication.factor`, and at least 3 (or as many brokers as
    answer, when fewer). A broker that is down does not answer: counting only those that
    do would create a 3-broker cluster's topics with 2 replicas and 1 in sync, for good. With
    the cluster's own factor, the controller also places replicas on a registered broker that
    is down (they catch up when it returns), and refuses the topic when too few brokers are
    registered. A client that may not read broker configs counts the brokers that answer."""
    answering = min(3, len(metadata.brokers))
    resource = ConfigResource(ConfigResource.Type.BROKER, str(next(iter(metadata.brokers))))
    try:
        entries = admin.describe_configs([resource])[resource].result(timeout=timeout)
        default = int(entries["default.replication.factor"].value)
    except Exception:  # refused (no DescribeConfigs on the cluster) or not given
        return answering
    return max(default, answering)


def replication_of(metadata: Any, topic: str) -> int:
    """The replication factor of an existing topic (its first partition's replica count)."""
    partitions = metadata.topics[topic].partitions
    return min((len(p.replicas) for p in partitions.values()), default=1)


def await_visible(admin: Any, names: list[str], timeout: float) -> None:
    """Wait until the broker asked lists every new topic with a leader for each partition: the
    controller has committed a creation before every broker has applied it, and a client that
    asks in between is told the topic does not exist."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            topics = admin.list_topics(timeout=max(1.0, deadline - time.monotonic())).topics
        except Exception:
            topics = {}
        if all(
            name in topics
            and topics[name].error is None
            and topics[name].partitions
            and all(p.leader >= 0 for p in topics[name].partitions.values())
            for name in names
        ):
            return
        if time.monotonic() >= deadline:
            raise BethosError(f"topics {', '.join(names)} were created but not listed in time")
        time.sleep(0.1)


def create_topics(
    kafka: KafkaSettings, topics: TopicSettings, timeout: float = 30.0
) -> dict[str, str]:
    """Create missing topics and set the listed configs on existing ones; name -> outcome."""
    admin, refusals = clients.admin_client(kafka)
    metadata = clients.metadata(admin, refusals, kafka, timeout=timeout)
    outcome: dict[str, str] = {}
    wanted = topic_specs(topics)
    missing = [spec for spec in wanted if spec.name not in metadata.topics]
    replication = replication_for_new_topics(admin, metadata, timeout) if missing else 1
    new = [
        NewTopic(
            spec.name,
            topics.partitions,
            replication,
            config={**spec.config, **durability(replication)},
        )
        for spec in missing
    ]
    futures = admin.create_topics(new, operation_timeout=timeout) if new else {}
    for name, future in futures.items():
        try:
            future.result()
            outcome[name] = "created"
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                clients.check(refusals, kafka)
                raise BethosError(
                    f"cannot create topic {name} with {replication} replicas "
                    f"({len(metadata.brokers)} broker(s) answer): {exc}"
                ) from None
            outcome[name] = "exists"
    created = [name for name, result in outcome.items() if result == "created"]
    if created:
        await_visible(admin, created, timeout)
    existing = [spec for spec in wanted if spec.name not in outcome]
    if existing:
        resources = [
            ConfigResource(
                ConfigResource.Type.TOPIC,
                spec.name,
                incremental_configs=[
                    ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                    for key, value in {
                        **spec.config,
                        **durability(replication_of(metadata, spec.name)),
                    }.items()
                ],
            )
            for spec in existing
        ]
        for resource, future in admin.incremental_alter_configs(resources).items():
            try:
                future.result()
            except Exception as exc:
                clients.check(refusals, kafka)
                raise BethosError(f"cannot configure topic {resource.name}: {exc}") from None
            outcome[resource.name] = "exists"
    return outcome
