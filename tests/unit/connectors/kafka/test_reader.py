"""Reading a topic's offsets while a broker settles its partitions' leadership."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from connectors.kafka.reader import watermarks


class SettlingConsumer:
    """Says `errors` first, then the offsets."""

    def __init__(self, *errors: int) -> None:
        self.errors = list(errors)
        self.asked = 0

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float) -> tuple[int, int]:
        self.asked += 1
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        return 3, 7


def test_a_partition_without_a_leader_for_a_moment_is_asked_again() -> None:
    consumer: Any = SettlingConsumer(
        KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE
    )
    assert watermarks(consumer, TopicPartition("t", 0), time.monotonic() + 10) == (3, 7)
    assert consumer.asked == 3


def test_other_errors_and_a_passed_deadline_are_raised() -> None:
    consumer: Any = SettlingConsumer(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaException):
        watermarks(consumer, TopicPartition("t", 0), time.monotonic() + 10)
    consumer = SettlingConsumer(KafkaError.NOT_LEADER_FOR_PARTITION)
    with pytest.raises(KafkaException):
        watermarks(consumer, TopicPartition("t", 0), time.monotonic())
    assert consumer.asked == 1
