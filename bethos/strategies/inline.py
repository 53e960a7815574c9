"""`inline`: the same merge, emitted straight to stdout, a JSON-lines file or a Kafka topic,
optionally in batches of up to `batch_size` VINs per message."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field

from bethos.config import MergerOptions, TopicSettings, is_topic_name
from bethos.exceptions import ConfigError
from bethos.sections import Broken, CheckedSection, DurationMs, Rule
from bethos.strategies.flushing import (
    DeliveryPlan,
    FlushLogic,
    Pending,
    encode_batch,
    tombstone_json,
)


class InlineSettings(CheckedSection):
    sink: Literal["stdout", "file", "kafka"] = "stdout"
    path: str | None = None
    # The Kafka topic; the `latest` topic when not set.
    topic: str | None = None
    # VINs per message: above 1, a message is a JSON array of latest records.
    batch_size: int = Field(default=1, ge=1, le=10_000)
    # How long a partial batch waits for more VINs.
    linger: DurationMs = 200

    def _file_has_a_path(self) -> Iterator[Broken]:
        if self.sink == "file" and not self.path:
            yield Broken(("path",), "required when inline.sink is 'file'")

    # The Kafka topic's rules need the `topics` section: `Inline.topic_problems`.
    rules: ClassVar[tuple[Rule, ...]] = (_file_has_a_path,)

    def kafka_topic(self, latest: str) -> str:
        """The topic `sink: kafka` writes to. Batches are no VIN's record: they never go to the
        compacted `latest` topic (the settings loader refuses that too)."""
        topic = self.topic or latest
        if self.batch_size > 1 and topic == latest:
            raise ConfigError(
                "latest_merger.inline.topic: batches (batch_size > 1) need a topic of their "
                f"own, not the latest topic {latest!r}"
            )
        return topic


class Inline(MergerOptions):
    strategy: Literal["inline"] = "inline"
    inline: InlineSettings = Field(default_factory=InlineSettings)

    def build(self) -> InlineLogic:
        inline = self.inline
        return InlineLogic(FlushLogic.of(self), DeliveryPlan(inline.batch_size, inline.linger))

    def topic_problems(self, topics: TopicSettings) -> Iterator[Broken]:
        inline = self.inline
        if inline.sink != "kafka":
            return
        topic, where = inline.topic or topics.latest, ("inline", "topic")
        if inline.topic is not None and not is_topic_name(topic):
            yield Broken(where, f"not a Kafka topic name: {topic!r}")
        elif topic in (topics.aggregated, topics.dlq):
            yield Broken(
                where,
                f"{topic!r} is an input of the merger (topics.aggregated) or its dead-letter "
                "topic: writing the latest records there feeds them back",
            )
        elif inline.batch_size > 1 and topic == topics.latest:
            yield Broken(
                where,
                f"required, and not topics.latest, when inline.batch_size is above 1 (it is "
                f"{inline.batch_size}): a batch holds several VINs, so its key is its delivery "
                "bucket (batch-N), not a VIN; on the compacted latest topic only the newest "
                "batch of each bucket would stay, and the VINs of the older ones would be "
                "compacted away. Name another topic",
            )


def batch_key(bucket: int) -> str:
    """The message key of a batch: its delivery bucket, so that one VIN's batches go to one
    partition, in order."""
    return f"batch-{bucket}"


@dataclass(frozen=True, slots=True)
class InlineLogic:
    """The per-VIN flush, and how emissions become messages: one per VIN (a line, or a Kafka
    message keyed by VIN), or with `batch_size` > 1 one per batch of the buffered VINs."""

    flush: FlushLogic
    delivery: DeliveryPlan

    @property
    def batched(self) -> bool:
        return self.delivery.batch_size > 1

    def batch_messages(self, bucket: int, entries: Sequence[Pending]) -> list[tuple[str, bytes]]:
        """The (key, value) messages of a delivery: a JSON array of records per batch."""
        key = batch_key(bucket)
        return [(key, encode_batch(batch)) for batch in self.delivery.batches(entries)]

    @staticmethod
    def line(vin: str, value: bytes | None) -> bytes:
        """One JSON line: the record, or for a forgotten VIN its tombstone object."""
        return (value if value is not None else tombstone_json(vin)) + b"\n"
