"""Topic settings that creation applies (docs/CONTRACT.md, "Topics")."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import ConfigResource, NewTopic

from bethos.config import KafkaSettings, TopicSettings
from bethos.exceptions import BethosError
from connectors.kafka import clients
from connectors.kafka.admin import (
    await_visible,
    create_topics,
    durability,
    replication_for_new_topics,
    topic_specs,
)


def test_replicated_topics_need_two_replicas_in_sync() -> None:
    assert durability(3) == {"min.insync.replicas": "2"}
    assert durability(5) == {"min.insync.replicas": "2"}
    # A single broker (the test stack) or two: requiring 2 in sync would refuse every write
    # as soon as one replica is missing.
    assert durability(1) == {"min.insync.replicas": "1"}
    assert durability(2) == {"min.insync.replicas": "1"}


def test_keyed_topics_are_compacted_and_dead_letters_kept_seven_days() -> None:
    specs = {spec.name: spec.config for spec in topic_specs(TopicSettings())}
    assert specs[TopicSettings().aggregated]["cleanup.policy"] == "compact"
    assert specs[TopicSettings().latest]["cleanup.policy"] == "compact"
    dlq = specs[TopicSettings().dlq]
    assert dlq == {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)}


class FakeFuture:
    def __init__(self, entries: dict[str, str] | None) -> None:
        self.entries = entries

    def result(self, timeout: float) -> dict[str, SimpleNamespace]:
        if self.entries is None:
            raise KafkaException("CLUSTER_AUTHORIZATION_FAILED")
        return {key: SimpleNamespace(value=value) for key, value in self.entries.items()}


class FakeAdmin:
    def __init__(self, entries: dict[str, str] | None) -> None:
        self.entries = entries
        self.asked: list[ConfigResource] = []

    def describe_configs(self, resources: list[ConfigResource]) -> dict[Any, FakeFuture]:
        self.asked += resources
        return {resources[0]: FakeFuture(self.entries)}


def brokers(count: int) -> SimpleNamespace:
    return SimpleNamespace(brokers={node: object() for node in range(1, count + 1)})


def test_new_topics_take_the_clusters_replication_though_a_broker_is_down() -> None:
    # Three brokers, one down: two answer. The cluster asks for 3: the controller places a
    # replica on the broker that is down, rather than 2 replicas and 1 in sync for good.
    admin = FakeAdmin({"default.replication.factor": "3"})
    assert replication_for_new_topics(admin, brokers(2), timeout=1) == 3
    assert admin.asked[0].restype == ConfigResource.Type.BROKER


def test_a_cluster_left_at_kafkas_default_of_one_still_gets_three_replicas() -> None:
    kafkas_default = FakeAdmin({"default.replication.factor": "1"})
    assert replication_for_new_topics(kafkas_default, brokers(5), timeout=1) == 3
    # A single broker (the test stack): one replica is all there can be.
    assert replication_for_new_topics(kafkas_default, brokers(1), timeout=1) == 1


def test_a_client_that_may_not_read_broker_configs_counts_the_brokers_that_answer() -> None:
    assert replication_for_new_topics(FakeAdmin(None), brokers(2), timeout=1) == 2
    assert replication_for_new_topics(FakeAdmin(None), brokers(4), timeout=1) == 3


class RefusingAdmin(FakeAdmin):
    """Kafka's answer when fewer brokers are registered than the replication asked for."""

    def __init__(self) -> None:
        super().__init__({"default.replication.factor": "3"})
        self.created: list[NewTopic] = []

    def create_topics(self, topics: list[NewTopic], operation_timeout: float) -> dict[str, Any]:
        self.created += topics
        refusal = KafkaException("INVALID_REPLICATION_FACTOR: only 2 broker(s) are registered")
        return {topic.topic: SimpleNamespace(result=Raises(refusal)) for topic in topics}


class Raises:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def __call__(self) -> None:
        raise self.error


def test_a_topic_kafka_refuses_is_an_error_naming_its_replicas_and_the_brokers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = RefusingAdmin()
    two_answer = SimpleNamespace(brokers={1: object(), 3: object()}, topics={})
    monkeypatch.setattr(clients, "admin_client", lambda kafka: (admin, clients.Refusals()))
    monkeypatch.setattr(clients, "metadata", lambda *args, **kwargs: two_answer)
    with pytest.raises(BethosError, match=r"with 3 replicas \(2 broker\(s\) answer\)"):
        create_topics(KafkaSettings(), TopicSettings())
    assert {topic.replication_factor for topic in admin.created} == {3}
    assert {topic.config["min.insync.replicas"] for topic in admin.created} == {"2"}


class SlowMetadataAdmin:
    """A broker that lists a new topic (with a leader) only from its `visible_after`th answer."""

    def __init__(self, visible_after: int) -> None:
        self.visible_after = visible_after
        self.answers = 0

    def list_topics(self, timeout: float) -> SimpleNamespace:
        self.answers += 1
        if self.answers < self.visible_after:
            return SimpleNamespace(topics={})
        partitions = {0: SimpleNamespace(leader=1), 1: SimpleNamespace(leader=1)}
        return SimpleNamespace(topics={"t": SimpleNamespace(error=None, partitions=partitions)})


def test_creation_returns_once_the_broker_lists_the_new_topics() -> None:
    admin = SlowMetadataAdmin(visible_after=3)
    await_visible(admin, ["t"], timeout=5)
    assert admin.answers == 3


def test_a_created_topic_never_listed_is_an_error() -> None:
    with pytest.raises(BethosError, match="created but not listed"):
        await_visible(SlowMetadataAdmin(visible_after=10**9), ["t"], timeout=0.3)
