"""Topic settings that creation applies (SPEC section 2 and 6)."""

from __future__ import annotations

from bethos.config import TopicSettings
from connectors.kafka.admin import durability, topic_specs


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
