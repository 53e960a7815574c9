"""The merger's other strategies on the real Kafka, Redis and Flink: `state_store` with its
publisher, `window_stream`, `inline`, and the load of the `latest` topic at a stateless start."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import yaml
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bethos.config import EtlSettings, MergerSettings, load_settings
from bethos.record import (
    AggregatedRecord,
    Signal,
    decode_latest_signals,
    encode_aggregated,
    encode_latest,
)
from bethos.strategies.flushing import stagger_offset
from bethos.strategies.state_store import StateStoreSettings
from connectors.kafka.admin import create_topics
from connectors.kafka.reader import read_topic
from connectors.store import ShardedStore, open_store, shard_prefix
from connectors.store.redis import tagged_keys
from devstack.cli import data
from devstack.stack import REDIS_PORT, Stack, jobs
from devstack.stack.redis import Redis
from tests.data.log_fields import LATE_FIELDS, PUBLISH_FIELDS
from tests.integration.helpers import (
    events,
    read_checked,
    topic_configs,
    wait_for,
    wait_until,
)
from tests.integration.own_services import OwnService, own_service
from tests.integration.test_merger import (
    expected_latest,
    flush_lines_from_now,
    latest_equals,
    produce,
    records_for,
)

pytestmark = pytest.mark.integration
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"


def merger_config(base: Path, name: str, **changes: Any) -> Path:
    """The test's merger config with `latest_merger` keys changed."""
    doc = yaml.safe_load(base.read_text())
    doc["latest_merger"].update(changes)
    path = base.with_name(f"{name}.yaml")
    path.write_text(yaml.safe_dump(doc))
    return path


def redis_store_config(base: Path, name: str, prefix: str, **store: object) -> Path:
    """A `state_store` merger config on the stack's Redis, flushing every 2 s."""
    redis = {"redis_url": REDIS_URL, "key_prefix": prefix, "publish_interval": "2s", **store}
    return merger_config(base, name, strategy="state_store", flush_interval="2s", state_store=redis)


def keyed(records: list[AggregatedRecord]) -> list[tuple[bytes | None, bytes | None]]:
    return [(r.vin.encode(), encode_aggregated(r)) for r in records]


def start_state_store(
    etl_settings: EtlSettings,
    submit: Callable[..., str],
    config: Path,
    records: list[AggregatedRecord],
) -> str:
    """Produce the records, start the merger and its publisher, wait until the latest topic
    holds their merge; returns the publisher's job id."""
    produce(etl_settings, keyed(records))
    submit("latest_merger", config)
    publisher = submit("state_store_publisher", config)
    assert wait_for(latest_equals(etl_settings, records), timeout=120) == []
    return publisher


def test_state_store_publisher_restarts_while_the_merger_runs(
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
    unique: str,
) -> None:
    prefix = f"test:{unique}"
    config = redis_store_config(pipeline_configs[1], "state-store", prefix, batch_size=50)
    shards = StateStoreSettings().shards
    store = open_store("redis", REDIS_URL, prefix, shards=shards)
    first = records_for(300, "a", 1_000_000, received_at=1)
    publisher = start_state_store(etl_settings, submit, config, first)

    savepoint = jobs.stop(stack, publisher, str(stack.flink.state / "flink" / "savepoints"))
    second = records_for(300, "b", 2_000_000, received_at=2)
    produce(etl_settings, keyed(second))
    # The merger goes on writing to the store while no publisher runs.
    wait_until(lambda: not _missing(store, second), timeout=90)
    assert not _missing(store, second)
    assert data.latest_records(etl_settings) == expected_latest(first)

    submit("state_store_publisher", config, savepoint=savepoint)
    assert wait_for(latest_equals(etl_settings, first + second), timeout=120) == []

    # The store wiped under the running jobs: the publisher sees a new epoch, says so
    # (`event=store_reset`) and publishes the store again from its start.
    resets_before = len(events(stack, "store_reset"))
    wiped = redis.Redis.from_url(REDIS_URL)
    for shard in range(shards):
        wiped.delete(*tagged_keys(shard_prefix(prefix, shard, shards)))
    wiped.close()
    third = records_for(50, "c", 3_000_000, received_at=3)
    produce(etl_settings, keyed(third))
    assert wait_for(latest_equals(etl_settings, first + second + third), timeout=120) == []
    wait_until(lambda: len(events(stack, "store_reset")) > resets_before, timeout=30, interval=1)
    resets = events(stack, "store_reset")[resets_before:]
    assert resets and all(list(e) == ["shard", "cursor", "head"] for e in resets)
    store.close()


def _missing(store: ShardedStore, records: list[AggregatedRecord]) -> list[str]:
    missing = []
    for record in records:
        raw = store.get(record.vin)
        signals = decode_latest_signals(raw)[1] if raw else {}
        if any(signals.get(name) != signal for name, signal in record.signals.items()):
            missing.append(record.vin)
    return missing


def test_inline_to_a_file_in_batches(
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
    tmp_path: Path,
) -> None:
    out = tmp_path / "latest.jsonl"
    config = merger_config(
        pipeline_configs[1],
        "inline",
        strategy="inline",
        flush_interval="2s",
        inline={"sink": "file", "path": str(out), "batch_size": 4},
    )
    records = records_for(10, "a", 1_000, received_at=1) + records_for(10, "b", 2_000, 2)
    produce(etl_settings, keyed(records))
    submit("latest_merger", config)
    expected = expected_latest(records)

    def written() -> dict[str, dict[str, Signal]]:
        if not out.exists():
            return {}
        latest: dict[str, dict[str, Signal]] = {}
        for line in out.read_text().splitlines():
            batch = orjson.loads(line)
            assert isinstance(batch, list) and 1 <= len(batch) <= 4
            for record in batch:
                vin, signals = decode_latest_signals(orjson.dumps(record))
                latest[vin] = signals
        return latest

    wait_until(lambda: written() == expected, timeout=120)
    assert written() == expected


@pytest.fixture
def single_partition(
    stack: Stack, pipeline_configs: tuple[Path, Path], unique: str
) -> tuple[Path, EtlSettings]:
    """Topics of one partition, so the records arrive in the order they were produced."""
    doc = yaml.safe_load(pipeline_configs[1].read_text())
    doc["topics"] = {
        "aggregated": f"test-{unique}.one.aggregated",
        "latest": f"test-{unique}.one.latest",
        "dlq": f"test-{unique}.one.dlq",
        "partitions": 1,
    }
    path = pipeline_configs[1].with_name("single.yaml")
    path.write_text(yaml.safe_dump(doc))
    settings = load_settings(MergerSettings, path)
    create_topics(settings.kafka, settings.topics)
    etl = load_settings(EtlSettings, pipeline_configs[0]).model_copy(
        update={"topics": settings.topics}
    )
    return path, etl


def test_window_stream_with_reordered_and_late_input(
    stack: Stack, single_partition: tuple[Path, EtlSettings], submit: Callable[..., str]
) -> None:
    base, settings = single_partition
    config = merger_config(
        base,
        "windows",
        strategy="window_stream",
        window={
            "size": "10s",
            "out_of_orderness": "1s",
            "allowed_lateness": "10s",
            "idleness": "60s",
        },
    )
    second = 1000
    t0 = (int(time.time() * 1000) - 3_600_000) // 10_000 * 10_000

    def rec(vin: str, offset_s: int, **signals: float) -> AggregatedRecord:
        ts = t0 + offset_s * second
        return AggregatedRecord(vin, {k: Signal(v, ts) for k, v in signals.items()}, "p", 1, 0)

    phases = [
        # window [0, 10): reordered inside the window
        [rec("A", 5, a=1.0), rec("A", 2, b=1.0), rec("B", 3, x=1.0)],
        # ts 15 moves the watermark to 14 s: window [0, 10) closes
        [rec("A", 15, a=2.0)],
        # late but allowed (window [0, 10) + 10 s lateness > watermark 14 s): emitted again
        [rec("A", 8, c=1.0)],
        # ts 40 closes window [10, 20)
        [rec("A", 40, d=1.0)],
        # past the allowed lateness (10 s + 10 s <= 39 s): dead letter `late`
        [rec("B", 4, x=9.0)],
        # ts 100 closes window [40, 50); window [100, 110) stays open
        [rec("B", 100, y=1.0)],
    ]
    submit("latest_merger", config)
    time.sleep(5)
    for phase in phases:
        produce(settings, keyed(phase))
        # Watermarks are emitted periodically: give each phase time to move it.
        time.sleep(3)

    def emissions(vin: str) -> list[dict[str, float]]:
        return [
            {name: s.value for name, s in decode_latest_signals(value)[1].items()}  # type: ignore[misc]
            for key, value in read_topic(settings.kafka, settings.topics.latest)
            if key == vin.encode() and value is not None
        ]

    expected_a = [
        {"a": 1.0, "b": 1.0},
        {"a": 1.0, "b": 1.0, "c": 1.0},
        {"a": 2.0, "b": 1.0, "c": 1.0},
        {"a": 2.0, "b": 1.0, "c": 1.0, "d": 1.0},
    ]
    wait_until(lambda: emissions("A") == expected_a, timeout=60)
    assert emissions("A") == expected_a
    assert emissions("B") == [{"x": 1.0}]
    dead = read_checked("dead_letter", settings.kafka, settings.topics.dlq)
    letters = [orjson.loads(v) for _, v in dead if v]
    assert [letter["reason"] for letter in letters] == ["late"]
    # ... and logged once, `event=late`, in the TaskManager's log.
    late = [e for e in events(stack, "late") if e["topic"] == settings.topics.aggregated]
    assert [(e["vin"], list(e)) for e in late] == [("B", LATE_FIELDS)], late


def test_a_stateless_start_loads_the_latest_topic_first(
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
) -> None:
    # The only reading of signal "a" survives in the latest topic alone (the aggregated record
    # that carried it was compacted away).
    old = records_for(20, "a", 1_000, received_at=1)
    # Java's partitioner, as the merger's sink uses: one VIN, one partition of the latest topic.
    producer = Producer(
        {"bootstrap.servers": etl_settings.kafka.brokers, "partitioner": "murmur2_random"}
    )
    for record in old:
        value = encode_latest(record.vin, record.signals, record.pod, record.received_at, 0)
        producer.produce(etl_settings.topics.latest, key=record.vin.encode(), value=value)
    assert producer.flush(30) == 0
    new = records_for(20, "b", 2_000, received_at=2)
    produce(etl_settings, keyed(new))
    submit("latest_merger", pipeline_configs[1])
    assert wait_for(latest_equals(etl_settings, old + new), timeout=120) == []


def test_inline_to_a_kafka_topic_keyed_by_vin(
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
) -> None:
    topic = f"{etl_settings.topics.latest}.inline"
    create_topics(etl_settings.kafka, etl_settings.topics.model_copy(update={"latest": topic}))
    config = merger_config(
        pipeline_configs[1],
        "inline-kafka",
        strategy="inline",
        flush_interval="2s",
        inline={"sink": "kafka", "topic": topic},
    )
    records = records_for(15, "a", 1_000, received_at=1) + records_for(15, "b", 2_000, 2)
    produce(etl_settings, keyed(records))
    submit("latest_merger", config)
    expected = expected_latest(records)

    def inline_latest() -> dict[str, dict[str, Signal]]:
        latest = {}
        for key, value in read_topic(etl_settings.kafka, topic):
            assert key is not None and value is not None
            vin, signals = decode_latest_signals(value)
            assert key.decode() == vin
            latest[vin] = signals
        return latest

    wait_until(lambda: inline_latest() == expected, timeout=120)
    assert inline_latest() == expected
    # Nothing went to the latest topic: the inline sink is the only output.
    assert read_topic(etl_settings.kafka, etl_settings.topics.latest) == []


def test_state_store_in_memory_with_its_publisher(
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
    unique: str,
) -> None:
    config = merger_config(
        pipeline_configs[1],
        "memory-store",
        strategy="state_store",
        flush_interval="2s",
        state_store={"backend": "memory", "key_prefix": unique, "publish_interval": "2s"},
    )
    start_state_store(etl_settings, submit, config, records_for(50, "a", 1_000, received_at=1))
    # The publisher logs each pass (`event=publish`) in the TaskManager's log.
    wait_until(lambda: sum(int(e["published"]) for e in events(stack, "publish")) >= 50, 30)
    published = events(stack, "publish")
    assert published and all(list(e) == PUBLISH_FIELDS for e in published)
    assert sum(int(e["published"]) for e in published) >= 50


# The Redis outage test's own Redis, beside the stack's (6379).
OUTAGE_REDIS_PORT = 16390


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnService]:
    with own_service(Redis, tmp_path / "own-redis", OUTAGE_REDIS_PORT) as redis_server:
        yield redis_server


def test_state_store_keeps_its_writes_while_redis_is_down(
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
    unique: str,
    own_redis: OwnService,
) -> None:
    """The store on a Redis of this test's own, stopped under the running jobs (the other
    tests go on with the stack's)."""
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    config = redis_store_config(
        pipeline_configs[1], "store-outage", f"test:{unique}", linger="100ms", redis_url=url
    )
    first = records_for(40, "a", 1_000, received_at=1)
    start_state_store(etl_settings, submit, config, first)

    def flush_errors() -> list[dict[str, str]]:
        return [e for e in events(stack, "flush_error") if f":{own_redis.port}" in e["err"]]

    def own_publisher_errors() -> list[dict[str, str]]:
        return [e for e in publisher_errors(stack) if f":{own_redis.port}" in e["err"]]

    own_redis.stop()
    try:
        second = records_for(40, "b", 2_000, received_at=2)
        produce(etl_settings, keyed(second))
        wait_until(lambda: bool(flush_errors()), 60, interval=1)
        assert flush_errors(), "no flush_error logged"
        # The publisher cannot read the store either: `[state_store_publisher] event=error`.
        wait_until(lambda: bool(own_publisher_errors()), 60, 1)
        assert own_publisher_errors(), "no publisher error"
    finally:
        own_redis.start()
    # The buffered writes were kept and retried: everything reaches the latest topic.
    assert wait_for(latest_equals(etl_settings, first + second), timeout=120) == []


def publisher_errors(stack: Stack) -> list[dict[str, str]]:
    """The publisher's `event=error` lines (a shard it cannot read: `shard`, `err`, `cursor`)."""
    return [e for e in events(stack, "error") if list(e) == ["shard", "err", "cursor"]]


def create_plain_topic(settings: EtlSettings, topic: str, partitions: int = 3) -> None:
    """A topic with the delete cleanup policy: it takes keyless and repeated keys alike."""
    admin = AdminClient({**settings.kafka.python_client_properties()})
    replication = min(3, len(admin.list_topics(timeout=30).brokers))
    config = {"cleanup.policy": "delete"}
    new = NewTopic(topic, partitions, replication, config=config)
    for future in admin.create_topics([new], operation_timeout=30).values():
        future.result()
    assert topic_configs(admin, [topic], "cleanup.policy") == {topic: "delete"}


def newest_per_vin(
    messages: list[tuple[bytes | None, bytes | None]], batch_size: int
) -> dict[str, dict[str, Signal]]:
    """The newest record of each VIN in a topic of batches. A VIN's batches share a key (its
    delivery bucket), so one partition, in order: its last occurrence is its newest."""
    latest: dict[str, dict[str, Signal]] = {}
    for key, value in messages:
        assert key is not None and key.startswith(b"batch-"), key
        batch = orjson.loads(value or b"null")
        assert isinstance(batch, list) and 1 <= len(batch) <= batch_size
        for record in batch:
            vin, signals = decode_latest_signals(orjson.dumps(record))
            latest[vin] = signals
    return latest


@pytest.mark.own_flink
def test_inline_batches_land_on_a_plain_topic_holding_every_vins_latest_record(
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
) -> None:
    """`inline` with `batch_size` > 1 to Kafka: keyed batches on a topic of their own (not the
    compacted latest topic, which would refuse or compact them), and the batcher's flush lines
    count the messages it really sent."""
    topic = f"{etl_settings.topics.latest}.batches"
    create_plain_topic(etl_settings, topic)
    batch_size = 4
    config = merger_config(
        pipeline_configs[1],
        "inline-batches",
        strategy="inline",
        flush_interval="2s",
        # Aligned: the first records flush together, in one interval or (a slow source) two.
        stagger=False,
        inline={"sink": "kafka", "topic": topic, "batch_size": batch_size, "linger": "100ms"},
    )
    first = records_for(30, "a", 1_000, received_at=1)
    produce(etl_settings, keyed(first))
    flush_lines = flush_lines_from_now(stack)
    job_id = submit("latest_merger", config)

    def batches() -> dict[str, dict[str, Signal]]:
        return newest_per_vin(read_topic(etl_settings.kafka, topic), batch_size)

    wait_until(lambda: batches() == expected_latest(first), timeout=120)
    assert batches() == expected_latest(first)
    sent_first = read_topic(etl_settings.kafka, topic)

    # The batcher's lines count the messages it really sent and the records in them; the merge
    # cannot know the batches: its lines count the VINs and records only. (The first records
    # mostly flush in one interval, but a slow source can spread them over two: lines summed.)
    def first_lines() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        lines = flush_lines()
        batcher = [line for line in lines if "vin_count" not in line]
        merge = [line for line in lines if "vin_count" in line and int(line["emitted"])]
        return batcher, merge

    def counted() -> tuple[int, int, int]:
        batcher, merge = first_lines()
        return (
            sum(int(line["message_count"]) for line in batcher),
            sum(int(line["emitted"]) for line in batcher),
            sum(int(line["emitted"]) for line in merge),
        )

    # A line is logged when its flush ends, before the checkpoint that shows its messages.
    wait_until(lambda: counted() == (len(sent_first), len(first), len(first)), timeout=30)
    assert counted() == (len(sent_first), len(first), len(first))
    batcher, merge = first_lines()
    assert batcher and merge
    assert all("message_count" not in line for line in merge)

    # Newer readings of every VIN, and a signal of their own for half of them: a later batch
    # holding a VIN supersedes the earlier one.
    second = records_for(30, "a", 2_000, received_at=2) + records_for(15, "b", 2_000, 2)
    produce(etl_settings, keyed(second))
    wait_until(lambda: batches() == expected_latest(first + second), timeout=120)
    assert batches() == expected_latest(first + second)
    assert read_topic(etl_settings.kafka, etl_settings.topics.latest) == []
    jobs.stop(stack, job_id, str(stack.flink.state / "flink" / "savepoints"))


def test_emit_all_with_stagger_sends_every_vin_each_interval_at_its_own_offset(
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
) -> None:
    interval = 3_000
    config = merger_config(
        pipeline_configs[1], "emit-all-stagger", flush_interval="3s", emit="all", stagger=True
    )
    records = records_for(12, "a", 1_000, received_at=1)
    produce(etl_settings, keyed(records))
    submit("latest_merger", config)

    def emissions() -> dict[str, list[int]]:
        """Per VIN, when each of its latest records was produced (epoch ms)."""
        found: dict[str, list[int]] = {}
        for _, value in read_topic(etl_settings.kafka, etl_settings.topics.latest):
            assert value is not None
            doc = orjson.loads(value)
            found.setdefault(doc["vin"], []).append(int(doc["produced_at"]))
        return found

    # Nothing changes after the first records: `emit: all` sends every VIN at every flush.
    wait_until(
        lambda: len(emissions()) == 12 and all(len(t) >= 4 for t in emissions().values()),
        timeout=120,
    )
    seen = emissions()
    assert len(seen) == 12 and all(len(times) >= 4 for times in seen.values()), seen
    for vin, times in seen.items():
        offset = stagger_offset(vin, interval)
        # Each VIN at its own offset into the interval, once an interval.
        lateness = [(at - offset) % interval for at in times]
        assert all(late < 1_000 for late in lateness), (vin, offset, lateness)
        gaps = [after - before for before, after in itertools.pairwise(sorted(times))]
        assert all(interval - 1_000 < gap < interval + 1_000 for gap in gaps), (vin, gaps)
    # Spread over the interval, not in one burst.
    assert len({stagger_offset(vin, interval) // 500 for vin in seen}) > 2
