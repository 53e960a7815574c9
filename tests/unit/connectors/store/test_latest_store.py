"""The semantics of the latest store, on the in-process store.

The `check_*` functions take any `LatestStore` (a new, empty one): the integration tests run the
same checks on Redis.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.store import LatestStore, MemoryStore, open_store
from connectors.store.base import Change, StoreEntry


def drain(store: LatestStore, cursor: int, limit: int) -> list[Change]:
    """Every change after `cursor`, paging `limit` at a time."""
    changes: list[Change] = []
    while page := store.changes_since(cursor, limit):
        assert len(page) <= limit
        changes += page
        cursor = page[-1].version
    return changes


def check_versions_increase(store: LatestStore) -> None:
    assert store.write([]) == 0
    first = store.write([StoreEntry("VIN1", b"1"), StoreEntry("VIN2", b"2")])
    second = store.write([StoreEntry("VIN3", b"3")])
    assert (first, second) == (2, 3)
    assert store.write([]) == 0
    assert [c.version for c in store.changes_since(0, 10)] == [1, 2, 3]


def check_one_change_per_vin(store: LatestStore) -> None:
    store.write([StoreEntry("VIN1", b"a"), StoreEntry("VIN2", b"a")])
    store.write([StoreEntry("VIN1", b"b")])
    # The same VIN twice in one batch: the later entry wins.
    last = store.write(
        [StoreEntry("VIN3", b"a"), StoreEntry("VIN2", b"b"), StoreEntry("VIN2", b"c")]
    )
    assert store.changes_since(0, 10) == [
        Change("VIN1", 3, b"b"),
        Change("VIN3", 4, b"a"),
        Change("VIN2", last, b"c"),
    ]
    assert store.count() == 3


def check_tombstones(store: LatestStore) -> None:
    store.write([StoreEntry("VIN1", b"a"), StoreEntry("VIN2", b"b")])
    assert store.count() == 2
    store.write([StoreEntry("VIN1", None), StoreEntry("NEVER-SEEN", None)])
    assert store.get("VIN1") is None
    assert store.count() == 1
    assert store.changes_since(2, 10) == [Change("VIN1", 3, None), Change("NEVER-SEEN", 4, None)]
    store.write([StoreEntry("VIN1", b"back")])
    assert (store.get("VIN1"), store.count()) == (b"back", 2)


def check_values_round_trip(store: LatestStore) -> None:
    values = {"VIN:1": b"", "VIN 2": b"\x00\xff not utf-8", "VÍN-3": b'{"speed": 1.5}'}
    store.write([StoreEntry(vin, value) for vin, value in values.items()])
    assert {vin: store.get(vin) for vin in values} == values
    assert {c.vin: c.value for c in store.changes_since(0, 10)} == values
    assert store.get("absent") is None


def check_paging(store: LatestStore) -> None:
    for batch in range(5):
        store.write([StoreEntry(f"VIN{batch}-{i}", b"x") for i in range(7)])
    store.write([StoreEntry("VIN0-0", b"y")])  # moves to the end
    changes = drain(store, 0, 3)
    assert [c.version for c in changes] == sorted({c.version for c in changes})
    assert len(changes) == len({c.vin for c in changes}) == 35
    assert changes[-1] == Change("VIN0-0", 36, b"y")
    assert drain(store, 30, 4) == changes[-6:]


def check_cursor_beyond_end(store: LatestStore) -> None:
    assert store.changes_since(0, 5) == []
    last = store.write([StoreEntry("VIN1", b"a")])
    assert store.changes_since(last, 5) == []
    assert store.changes_since(last + 1_000, 5) == []
    with pytest.raises(ValueError, match="limit"):
        store.changes_since(0, 0)


SEMANTIC_CHECKS: list[Callable[[LatestStore], None]] = [
    check_versions_increase,
    check_one_change_per_vin,
    check_tombstones,
    check_values_round_trip,
    check_paging,
    check_cursor_beyond_end,
]

vins = st.sampled_from([f"VIN{i}" for i in range(6)])
entries = st.builds(StoreEntry, vins, st.none() | st.binary(max_size=4))
batches = st.lists(st.lists(entries, max_size=8), max_size=8)
limits = st.integers(min_value=1, max_value=4)
# A write batch, or a reader pulling one page.
operations = st.lists(st.one_of(st.lists(entries, max_size=8), limits), max_size=20)


def check_paging_replays_the_store(
    store: LatestStore, batches: list[list[StoreEntry]], limit: int
) -> None:
    for batch in batches:
        store.write(batch)
    replica: dict[str, bytes] = {}
    for change in drain(store, 0, limit):
        apply(replica, change)
    assert replica == contents(store)
    assert len(replica) == store.count()


def check_interleaved_reader_misses_nothing(
    store: LatestStore, operations: list[list[StoreEntry] | int]
) -> None:
    """A reader paging between writes, then to the end, holds what the store holds."""
    replica: dict[str, bytes] = {}
    cursor = 0
    for operation in operations:
        if isinstance(operation, list):
            store.write(operation)
            continue
        for change in store.changes_since(cursor, operation):
            assert change.version > cursor
            apply(replica, change)
            cursor = change.version
    for change in drain(store, cursor, 2):
        apply(replica, change)
    assert replica == contents(store)


def apply(replica: dict[str, bytes], change: Change) -> None:
    if change.value is None:
        replica.pop(change.vin, None)
    else:
        replica[change.vin] = change.value


def contents(store: LatestStore) -> dict[str, bytes]:
    return {
        vin: value for vin in (f"VIN{i}" for i in range(6)) if (value := store.get(vin)) is not None
    }


@pytest.mark.parametrize("check", SEMANTIC_CHECKS, ids=lambda check: check.__name__)
def test_memory_store(check: Callable[[LatestStore], None]) -> None:
    check(MemoryStore())


@given(batches, limits)
def test_paging_from_zero_replays_the_store(batches: list[list[StoreEntry]], limit: int) -> None:
    check_paging_replays_the_store(MemoryStore(), batches, limit)


@given(operations)
def test_a_reader_between_writes_misses_no_change(operations: list[list[StoreEntry] | int]) -> None:
    check_interleaved_reader_misses_nothing(MemoryStore(), operations)


def test_concurrent_writers_get_distinct_versions() -> None:
    store = MemoryStore()

    def writer(n: int) -> None:
        for i in range(200):
            store.write([StoreEntry(f"VIN{n}-{i}", b"x"), StoreEntry(f"VIN{n}-{i}", b"y")])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    changes = store.changes_since(0, 10_000)
    assert len(changes) == store.count() == 800
    assert {c.value for c in changes} == {b"y"}
    assert store.write([StoreEntry("last", b"z")]) == 1_601


def test_open_store_knows_two_backends() -> None:
    assert isinstance(open_store("memory", "redis://unused", "p").shard(0), MemoryStore)
    with pytest.raises(ValueError, match="unknown store backend 'sqlite'"):
        open_store("sqlite", "redis://unused", "p")


def test_head_is_the_newest_version() -> None:
    store = MemoryStore()
    assert store.head() == 0
    store.write([StoreEntry("A", b"1"), StoreEntry("B", None)])
    assert store.head() == 2
