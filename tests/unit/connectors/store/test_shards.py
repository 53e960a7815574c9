"""A store in shards: which shard a VIN belongs to, the shards' key prefixes, and a sharded
store's reads and writes (on in-process shards)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bethos.strategies.flushing import DELIVERY_BUCKETS, delivery_bucket
from connectors.store import MemoryStore, ShardedStore, open_store, shard_of, shard_prefix
from connectors.store.base import Change, StoreEntry

vins = st.text(min_size=1, max_size=20)
divisors = st.sampled_from([2**n for n in range(8)])


@given(vins, divisors)
def test_a_delivery_bucket_lies_in_one_shard(vin: str, shards: int) -> None:
    # The writer's batches are per bucket: with a shard count that divides the buckets, each
    # batch is one shard's, one atomic write.
    assert DELIVERY_BUCKETS % shards == 0
    assert delivery_bucket(vin) % shards == shard_of(vin, shards)
    assert 0 <= shard_of(vin, shards) < shards


def test_shard_of_is_stable() -> None:
    # Pinned: a VIN's shard must not change between processes or releases (a stored VIN would
    # be looked for in another shard), so not Python's salted hash().
    assert [shard_of(vin, 16) for vin in ("VIN1", "WVWZZZ1JZXW000001", "Z")] == [12, 15, 7]
    assert [shard_of(vin, 128) for vin in ("VIN1", "WVWZZZ1JZXW000001", "Z")] == [28, 47, 103]


def test_shard_prefixes_name_the_count() -> None:
    assert shard_prefix("bethos:latest", 0, 1) == "bethos:latest"
    assert shard_prefix("bethos:latest", 3, 16) == "bethos:latest:shard-3-of-16"
    assert shard_prefix("p", 3, 16) != shard_prefix("p", 3, 32)
    with pytest.raises(ValueError, match=r"shard 16 is not one of 0\.\.15"):
        shard_prefix("p", 16, 16)


def test_writes_go_to_each_vins_shard_in_order() -> None:
    store = ShardedStore([MemoryStore() for _ in range(4)])
    store.write([StoreEntry(f"VIN{i}", f"{i}".encode()) for i in range(40)])
    store.write([StoreEntry("VIN3", b"again"), StoreEntry("VIN5", None)])
    assert store.count() == 39
    assert store.get("VIN3") == b"again" and store.get("VIN5") is None
    for index, shard in enumerate(store.shards):
        changes = shard.changes_since(0, 100)
        assert changes and all(shard_of(c.vin, 4) == index for c in changes)
        # Each shard numbers its own changes, from 1.
        versions = [c.version for c in changes]
        assert versions == sorted(versions) and versions[-1] == shard.head() <= 42
    assert sum(shard.head() for shard in store.shards) == 42
    # The rewrite is the shard's newest change of VIN3 (VIN5's tombstone may follow it).
    vin3 = store.shard_for("VIN3")
    (change,) = [c for c in vin3.changes_since(0, 100) if c.vin == "VIN3"]
    assert change == Change(
        "VIN3", vin3.head() - (shard_of("VIN5", 4) == shard_of("VIN3", 4)), b"again"
    )


def test_one_shard_is_the_store_itself() -> None:
    one = MemoryStore()
    store = ShardedStore([one])
    store.write([StoreEntry("A", b"1"), StoreEntry("B", b"2")])
    assert [c.vin for c in one.changes_since(0, 10)] == ["A", "B"]


def test_open_store_opens_the_shards() -> None:
    store = open_store("memory", "redis://unused", "p", shards=8)
    assert len(store.shards) == 8 and all(isinstance(s, MemoryStore) for s in store.shards)
    with pytest.raises(ValueError, match="at least one shard"):
        open_store("memory", "redis://unused", "p", shards=0)
    with pytest.raises(ValueError, match="at least one shard"):
        ShardedStore([])
