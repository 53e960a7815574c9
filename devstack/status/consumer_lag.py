"""How far a consumer group is behind its topic, from Kafka alone: the topic's end offsets
minus the group's committed offsets, per partition, summed per topic."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from bethos.config import KafkaSettings


@dataclass(frozen=True)
class TopicLag:
    group: str
    topic: str
    partitions: int
    # end offsets minus the group's committed offsets, over the partitions with a commit;
    # None when Kafka did not answer
    records_behind: int | None
    # partitions the group has committed nothing for yet (not counted above)
    uncommitted_partitions: int


def topic_lag(
    group: str, topic: str, committed: Mapping[int, int], ends: Mapping[int, int]
) -> TopicLag:
    """Records behind: per partition the end offset minus the committed one (a negative
    committed offset is Kafka's "none"), summed over the topic's partitions."""
    behind = 0
    uncommitted = 0
    for partition, end in ends.items():
        offset = committed.get(partition, -1)
        if offset < 0:
            uncommitted += 1
        else:
            behind += max(0, end - offset)
    return TopicLag(group, topic, len(ends), behind, uncommitted)


def group_lag(kafka: KafkaSettings, group: str, topic: str, timeout: float = 5.0) -> TopicLag:
    """The lag of a consumer group on a topic, asked of Kafka; records_behind None when Kafka
    does not answer or the topic does not exist. The consumer only reads the group's committed
    offsets: it neither joins the group nor commits."""
    consumer = Consumer(
        {
            **kafka.python_client_properties(),
            "group.id": group,
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            return TopicLag(group, topic, 0, None, 0)
        partitions = [TopicPartition(topic, p) for p in sorted(described.partitions)]
        ends = {
            tp.partition: consumer.get_watermark_offsets(tp, timeout=timeout)[1]
            for tp in partitions
        }
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout)}
    except KafkaException:
        return TopicLag(group, topic, 0, None, 0)
    finally:
        consumer.close()
    return topic_lag(group, topic, committed, ends)
