"""`state_store`: flushes write to a store (Redis or memory); a separate publisher job reads what
changed in the store every `publish_interval` and emits it to the `latest` topic. Both halves'
logic is here, free of Flink; the store itself is `connectors.store`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import Field, SecretStr

from bethos.config import MergerOptions
from bethos.sections import Broken, CheckedSection, DurationMs, Rule
from bethos.strategies.flushing import DELIVERY_BUCKETS, DeliveryPlan, FlushLogic, Pending
from bethos.urls import mask_url, url_password


class StateStoreSettings(CheckedSection):
    backend: Literal["redis", "memory"] = "redis"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "bethos:latest"
    # redis_url names one node of a Redis Cluster; the client finds the others.
    redis_cluster: bool = False
    # The store in this many shards, each with its keys, versions and change log: the
    # publisher's subtasks share the shards, a Redis Cluster spreads them over its masters. Part
    # of the keys' names: another count is another (new) store.
    shards: int = 16
    # VINs per pipelined (one round trip, atomic) write.
    batch_size: int = Field(default=2_000, ge=1, le=5_000)
    linger: DurationMs = 200
    # How often the publisher reads the store.
    publish_interval: DurationMs = 120_000
    password: SecretStr | None = None

    def _url_and_publish_interval(self) -> Iterator[Broken]:
        for message in url_password(self.redis_url, "REDIS_PASSWORD"):
            yield Broken(("redis_url",), message)
        if self.publish_interval <= 0:
            yield Broken(("publish_interval",), "must be more than 0")
        if self.backend == "redis" and urlsplit(self.redis_url).scheme not in (
            "redis",
            "rediss",
            "unix",
        ):
            yield Broken(
                ("redis_url",),
                f"not a Redis URL: {mask_url(self.redis_url)!r} "
                "(redis://host:port/db, rediss:// or unix://)",
            )

    def _shards_divide_the_delivery_buckets(self) -> Iterator[Broken]:
        # A delivery bucket's batch then lies in one shard: one write, atomic.
        if self.shards < 1 or DELIVERY_BUCKETS % self.shards:
            choices = ", ".join(str(2**n) for n in range(DELIVERY_BUCKETS.bit_length()))
            yield Broken(("shards",), f"must be one of {choices}, got {self.shards}")

    rules: ClassVar[tuple[Rule, ...]] = (
        _url_and_publish_interval,
        _shards_divide_the_delivery_buckets,
    )


class StateStore(MergerOptions):
    strategy: Literal["state_store"] = "state_store"
    state_store: StateStoreSettings = Field(default_factory=StateStoreSettings)

    def build(self) -> StoreLogic:
        store = self.state_store
        return StoreLogic(
            FlushLogic.of(self),
            DeliveryPlan(store.batch_size, store.linger),
            PublishPlan(store.publish_interval),
        )


class StoreChange(Protocol):
    """A change the store reports (`connectors.store.base.Change`)."""

    @property
    def vin(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def value(self) -> bytes | None: ...


class ChangeLog(Protocol):
    """The reading side of the store (`connectors.store.base.LatestStore`)."""

    def head(self) -> int: ...
    def epoch(self) -> str: ...
    def changes_since(self, cursor: int, limit: int) -> Sequence[StoreChange]: ...


@dataclass(frozen=True, slots=True)
class PublishPlan:
    """The publisher: every `interval` it pages through the store's changes after its cursor
    (the newest version published)."""

    interval_ms: int
    page: int = 5_000

    def due(self, now_ms: int, next_at_ms: int | None) -> bool:
        return now_ms >= (next_at_ms or 0)

    @staticmethod
    def wiped(cursor: int, head: int, seen_epoch: str | None = None, epoch: str = "") -> bool:
        """Whether the store was wiped (a Redis without persistence restarted, a flush) since
        the cursor was read from it: its versions start again from 1, so publish it all again
        (from cursor 0) rather than wait for `cursor`. Its newest version is behind the cursor,
        or, after more writes than the cursor, its epoch is another than the one seen."""
        return head < cursor or bool(seen_epoch and epoch and epoch != seen_epoch)

    def pages(self, store: ChangeLog, cursor: int) -> Iterator[Sequence[StoreChange]]:
        """The changes after `cursor`, a page at a time, ascending by version; a page's last
        version is the cursor once it is published."""
        while True:
            changes = store.changes_since(cursor, self.page)
            if changes:
                yield changes
                cursor = changes[-1].version
            if len(changes) < self.page:
                return


@dataclass(frozen=True, slots=True)
class StoreLogic:
    """The per-VIN flush; the store-writing plan (emissions buffered per delivery bucket, each
    batch one atomic, pipelined write); the publisher's plan."""

    flush: FlushLogic
    delivery: DeliveryPlan
    publish: PublishPlan

    def writes(self, entries: Sequence[Pending]) -> list[Sequence[Pending]]:
        """The store writes of a delivery, in order: one atomic write per batch."""
        return self.delivery.batches(entries)
