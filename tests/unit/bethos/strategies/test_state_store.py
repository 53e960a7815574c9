"""`state_store`: the store-writing plan and the publisher's paging, on the in-memory store."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bethos.strategies.state_store import PublishPlan, StateStore
from connectors.store import MemoryStore
from connectors.store.base import StoreEntry


def test_build_carries_the_flush_the_writes_and_the_publisher() -> None:
    options = StateStore.model_validate(
        {
            "flush_interval": "3s",
            "vin_ttl": "1m",
            "state_store": {"batch_size": 3, "linger": "10ms", "publish_interval": "5s"},
        }
    )
    logic = options.build()
    assert (logic.flush.interval_ms, logic.flush.ttl_ms) == (3_000, 60_000)
    assert (logic.delivery.batch_size, logic.delivery.linger_ms) == (3, 10)
    assert logic.publish == PublishPlan(5_000)


def test_a_delivery_is_one_atomic_write_per_batch_in_order() -> None:
    logic = StateStore.model_validate({"state_store": {"batch_size": 2}}).build()
    entries = [("A", b"1"), ("B", None), ("C", b"3")]
    assert logic.writes(entries) == [[("A", b"1"), ("B", None)], [("C", b"3")]]


def test_the_publisher_is_due_once_per_interval() -> None:
    plan = PublishPlan(interval_ms=1_000)
    assert plan.due(5, None)
    assert not plan.due(999, 1_000)
    assert plan.due(1_000, 1_000)


def test_a_store_behind_the_cursor_was_wiped() -> None:
    assert PublishPlan.wiped(cursor=10, head=3)
    assert not PublishPlan.wiped(cursor=10, head=10)
    assert not PublishPlan.wiped(cursor=0, head=0)


def test_a_store_of_another_epoch_was_wiped_however_far_its_versions_went() -> None:
    assert PublishPlan.wiped(cursor=10, head=500, seen_epoch="a", epoch="b")
    assert not PublishPlan.wiped(cursor=10, head=500, seen_epoch="a", epoch="a")
    # No epoch seen yet (restored from before epochs), or none set: the versions decide.
    assert not PublishPlan.wiped(cursor=10, head=500, seen_epoch=None, epoch="b")
    assert PublishPlan.wiped(cursor=10, head=0, seen_epoch="a", epoch="")


def test_a_memory_store_has_an_epoch_once_written() -> None:
    store = MemoryStore()
    assert store.epoch() == ""
    store.write([StoreEntry("VIN1", b"a")])
    other = MemoryStore()
    other.write([StoreEntry("VIN1", b"a")])
    assert store.epoch() and store.epoch() != other.epoch()


@given(st.integers(0, 30), st.integers(1, 7), st.integers(0, 30))
def test_pages_hold_every_change_after_the_cursor_once(vins: int, page: int, cursor: int) -> None:
    store = MemoryStore()
    store.write([StoreEntry(f"V{i}", b"x" if i % 4 else None) for i in range(vins)])
    pages = list(PublishPlan(1_000, page=page).pages(store, cursor))
    assert all(1 <= len(p) <= page for p in pages)
    versions = [change.version for p in pages for change in p]
    assert versions == list(range(cursor + 1, vins + 1))


def test_the_shard_count_divides_the_delivery_buckets() -> None:
    assert StateStore().state_store.shards == 16
    for shards in (1, 2, 64, 128):
        assert StateStore.model_validate({"state_store": {"shards": shards}}).state_store.shards
    for shards in (0, 3, 24, 256):
        with pytest.raises(ValidationError, match=r"state_store\.shards\n  must be one of 1, 2"):
            StateStore.model_validate({"state_store": {"shards": shards}})
