"""Reading a whole compacted topic as it stands: the last value per key (verify, tests)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from bethos.config import KafkaSettings
from bethos.exceptions import BethosError
from connectors.kafka import clients


def read_topic(
    kafka: KafkaSettings, topic: str, timeout: float = 60.0
) -> list[tuple[bytes | None, bytes | None]]:
    """Every committed (key, value) from the beginning up to the end offsets seen at the start.

    A reader of committed records stops short of a partition's end offset: the last offsets
    may be transaction markers (never delivered) or records of a transaction still open. So a
    partition is read when a record at or past its end arrives, or the consumer reports that
    it reached the partition's end (`enable.partition.eof`)."""
    consumer, refusals = clients.consumer(
        kafka,
        {
            "group.id": f"bethos-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        },
    )
    try:
        metadata = clients.metadata(consumer, refusals, kafka, topic, timeout)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            raise BethosError(f"topic {topic} does not exist")
        partitions = list(metadata.topics[topic].partitions)
        ends: dict[int, int] = {}
        deadline = time.monotonic() + timeout
        for number in partitions:
            low, high = watermarks(consumer, TopicPartition(topic, number), deadline)
            if high > low:
                ends[number] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages: list[tuple[bytes | None, bytes | None]] = []
        done: set[int] = set()
        while len(done) < len(ends):
            message = consumer.poll(timeout)
            if message is None:
                clients.check(refusals, kafka)
                raise BethosError(f"timed out reading {topic}")
            error = message.error()
            partition, offset = message.partition(), message.offset()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                if partition is not None and partition in ends:
                    done.add(partition)
                continue
            if error is not None:
                raise BethosError(f"reading {topic}: {error}")
            if partition is None or offset is None:
                continue
            if partition in ends and offset < ends[partition]:
                messages.append((message.key(), message.value()))
            if partition in ends and offset >= ends[partition] - 1:
                done.add(partition)
        return messages
    finally:
        consumer.close()


# What a broker answers while its partitions' leadership is being settled.
LEADERSHIP_MOVING = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)


def watermarks(consumer: Consumer, partition: TopicPartition, deadline: float) -> tuple[int, int]:
    """A partition's low and high offsets. A broker that just came back (restarted, or thawed
    after a pause) may say for a moment that it leads no partition: asked again until
    `deadline`, as for any error the client calls retriable."""
    while True:
        try:
            low, high = consumer.get_watermark_offsets(
                partition, timeout=max(1.0, deadline - time.monotonic())
            )
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            retriable = isinstance(error, KafkaError) and (
                error.retriable() or error.code() in LEADERSHIP_MOVING
            )
            if not retriable or time.monotonic() + 0.5 > deadline:
                raise
            time.sleep(0.5)


def keyed(
    messages: Iterable[tuple[bytes | None, bytes | None]],
) -> Iterator[tuple[str, bytes | None]]:
    """The messages that have a key, the key as text; a None value is a tombstone."""
    for key, value in messages:
        if key is not None:
            yield key.decode("utf-8", "replace"), value


def latest_by_key(messages: list[tuple[bytes | None, bytes | None]]) -> dict[str, bytes]:
    """The compacted view: the last value per key; a tombstone removes the key."""
    latest: dict[str, bytes] = {}
    for name, value in keyed(messages):
        if value is None:
            latest.pop(name, None)
        else:
            latest[name] = value
    return latest


def end_offsets(kafka: KafkaSettings, topic: str, timeout: float = 30.0) -> dict[int, int]:
    """partition -> high watermark (the offset the next record will get)."""
    consumer, refusals = clients.consumer(kafka, {"group.id": f"bethos-offsets-{uuid.uuid4()}"})
    try:
        metadata = clients.metadata(consumer, refusals, kafka, topic, timeout)
        partitions = list(metadata.topics[topic].partitions)
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in partitions
        }
    finally:
        consumer.close()
