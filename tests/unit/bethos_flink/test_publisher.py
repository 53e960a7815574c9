"""The `state_store` publisher run in plain Python (harness.py), keyed by shard: each shard's
changes, cursor and epoch on their own. No JVM."""

from __future__ import annotations

import logging
import uuid

import pytest

from bethos.strategies.state_store import StateStore
from bethos_flink.strategies.state_store import PublishFunction, ShardTicks, store_for
from connectors.store import MemoryStore, shard_of
from connectors.store.base import StoreEntry
from tests.data.log_fields import PUBLISH_FIELDS
from tests.unit.bethos_flink.harness import Harness
from tests.unit.bethos_flink.test_delivery import events

SHARDS = 4


def publisher() -> tuple[Harness, StateStore]:
    options = StateStore.model_validate(
        {
            "state_store": {
                "backend": "memory",
                "key_prefix": uuid.uuid4().hex,
                "shards": SHARDS,
                "publish_interval": "1s",
            }
        }
    )
    function = PublishFunction(options.state_store, options.build().publish)
    return Harness(function, now=10_000), options


def tick(run: Harness) -> dict[int, list[str]]:
    """One tick to every shard, as ShardTicks fans it out; the VINs each shard published."""
    published: dict[int, list[str]] = {}
    for shard in ShardTicks(SHARDS).flat_map(object()):
        before = len(run.output)
        run.element(shard, shard)
        published[shard] = [row[0] for row in run.output[before:]]
    return published


def test_each_shard_publishes_its_own_changes_after_its_own_cursor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    run, options = publisher()
    store = store_for(options.state_store)
    vins = [f"VIN{i}" for i in range(40)]
    store.write([StoreEntry(vin, b"{}") for vin in vins])
    first = tick(run)
    assert sorted(v for shard in first.values() for v in shard) == sorted(vins)
    for shard, published in first.items():
        assert published and {shard_of(vin, SHARDS) for vin in published} == {shard}
        assert run.state[("cursor", shard)] == store.shard(shard).head()
    assert run.counters["published"].count == 40
    assert run.counters["shards"].count == SHARDS
    assert run.counters["cursor"].count == sum(s.head() for s in store.shards) == 40
    lines = events(caplog, "publish")
    assert [list(line) for line in lines] == [PUBLISH_FIELDS] * SHARDS
    assert sorted(int(line["shard"]) for line in lines) == list(range(SHARDS))

    store.write([StoreEntry("VIN3", b'{"v":2}'), StoreEntry("VIN7", None)])
    assert tick(run) == {shard: [] for shard in range(SHARDS)}  # not due yet
    run.advance(11_000)
    second = tick(run)
    assert sorted(v for shard in second.values() for v in shard) == ["VIN3", "VIN7"]
    assert run.counters["tombstones"].count == 1


def test_a_wiped_shard_starts_over_alone(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    run, options = publisher()
    store = store_for(options.state_store)
    store.write([StoreEntry(f"VIN{i}", b"{}") for i in range(40)])
    tick(run)
    wiped = shard_of("VIN1", SHARDS)
    shards = list(store.shards)
    shards[wiped] = MemoryStore()  # a node restarted without persistence
    store.shards = tuple(shards)
    store.write([StoreEntry("VIN1", b'{"v":2}')])
    run.advance(11_000)
    assert tick(run) == {shard: ["VIN1"] if shard == wiped else [] for shard in range(SHARDS)}
    (reset,) = events(caplog, "store_reset")
    assert reset["shard"] == str(wiped) and reset["head"] == "1"
    assert run.state[("cursor", wiped)] == 1
