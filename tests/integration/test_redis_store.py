"""The latest store on a real Redis: the semantics of the in-process store, the key layout,
large atomic writes, failures and a flushed script cache."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import pytest
import redis
from hypothesis import HealthCheck, given, settings

from bethos.exceptions import StoreError
from bethos.strategies.state_store import PublishPlan
from connectors.store import LatestStore, MemoryStore, RedisStore
from connectors.store.base import Change, StoreEntry
from connectors.store.redis import MAX_ENTRIES_PER_CALL
from devstack.stack import REDIS_PORT
from tests.unit.connectors.store.test_latest_store import (
    SEMANTIC_CHECKS,
    check_interleaved_reader_misses_nothing,
    operations,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> str:
    url = os.environ.get("BETHOS_TEST_REDIS_URL")
    if url:
        return url
    request.getfixturevalue("stack")
    return f"redis://127.0.0.1:{REDIS_PORT}/0"


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def prefixes(raw: redis.Redis) -> Iterator[Callable[[], str]]:
    """New key prefixes; their keys are deleted at the end of the test."""
    made: list[str] = []

    def new() -> str:
        made.append(f"test-{uuid.uuid4().hex[:10]}:latest")
        return made[-1]

    yield new
    for prefix in made:
        delete_keys(raw, prefix)


@pytest.fixture
def prefix(prefixes: Callable[[], str]) -> str:
    return prefixes()


@pytest.fixture
def store(redis_url: str, prefix: str) -> Iterator[RedisStore]:
    opened = RedisStore.connect(redis_url, prefix)
    yield opened
    opened.close()


def delete_keys(raw: redis.Redis, prefix: str) -> None:
    for pattern in (f"{prefix}:*", "{" + prefix + "}:*"):
        keys = list(raw.scan_iter(match=pattern))
        if keys:
            raw.delete(*keys)


@pytest.mark.parametrize("check", SEMANTIC_CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_semantics(
    backend: str, check: Callable[[LatestStore], None], request: pytest.FixtureRequest
) -> None:
    if backend == "memory":
        check(MemoryStore())
    else:
        check(request.getfixturevalue("store"))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations)
def test_a_reader_between_writes_misses_no_change(
    redis_url: str, raw: redis.Redis, operations: list[list[StoreEntry] | int]
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:10]}:latest"
    store = RedisStore.connect(redis_url, prefix)
    try:
        check_interleaved_reader_misses_nothing(store, operations)
    finally:
        store.close()
        delete_keys(raw, prefix)


def test_the_key_layout(store: RedisStore, raw: redis.Redis, prefix: str) -> None:
    store.write([StoreEntry("VIN1", b"a"), StoreEntry("VIN2", b"b")])
    store.write([StoreEntry("VIN1", None)])
    # The prefix is a hash tag: every key in one Redis Cluster slot.
    tag = "{" + prefix + "}"
    assert sorted(raw.scan_iter(match=f"{tag}:*")) == [
        f"{tag}:{name}".encode() for name in ("changes", "epoch", "records", "version")
    ]
    assert raw.hgetall(f"{tag}:records") == {b"VIN2": b"b"}
    assert raw.zrange(f"{tag}:changes", 0, -1, withscores=True) == [
        (b"VIN2", 2.0),
        (b"VIN1", 3.0),
    ]
    assert raw.get(f"{tag}:version") == b"3"
    epoch = raw.get(f"{tag}:epoch")
    assert epoch and store.epoch() == epoch.decode()
    # Set by the first write only.
    store.write([StoreEntry("VIN3", b"c")])
    assert raw.get(f"{tag}:epoch") == epoch


def test_a_store_of_the_untagged_layout_is_taken_over(
    redis_url: str, raw: redis.Redis, prefix: str
) -> None:
    raw.hset(f"{prefix}:records", mapping={"VIN1": b"a", "VIN2": b"b"})
    raw.zadd(f"{prefix}:changes", {"VIN1": 1, "VIN2": 2})
    raw.set(f"{prefix}:version", 2)
    store = RedisStore.connect(redis_url, prefix)
    try:
        assert store.changes_since(0, 10) == [Change("VIN1", 1, b"a"), Change("VIN2", 2, b"b")]
        assert store.write([StoreEntry("VIN3", b"c")]) == 3
        assert list(raw.scan_iter(match=f"{prefix}:*")) == []
    finally:
        store.close()


def test_a_wipe_followed_by_more_writes_than_the_cursor_is_noticed(
    store: RedisStore, raw: redis.Redis, prefix: str
) -> None:
    store.write([StoreEntry(f"VIN{i}", b"x") for i in range(3)])
    cursor, seen = store.head(), store.epoch()
    delete_keys(raw, prefix)  # a Redis without persistence restarted
    store.write([StoreEntry(f"VIN{i}", b"y") for i in range(10)])
    head, epoch = store.head(), store.epoch()
    assert head > cursor and epoch and epoch != seen
    assert PublishPlan.wiped(cursor, head, seen, epoch)
    assert not PublishPlan.wiped(cursor, head, epoch, epoch)


def test_a_large_write_is_split_into_atomic_calls_in_order(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = [StoreEntry(f"VIN{i:05d}", b"1") for i in range(15_000)]
    again = [StoreEntry(f"VIN{i:05d}", b"2") for i in range(5_000)]
    script = store._write_script
    calls: list[int] = []

    def counting(keys: list[str], args: list[str | bytes]) -> object:
        calls.append(len(args) // 3)
        return script(keys=keys, args=args)

    monkeypatch.setattr(store, "_write_script", counting)
    seen: set[int] = set()
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            seen.add(store.count())

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        assert store.write(first + again) == 20_000
    finally:
        done.set()
        poller.join()
    assert calls == [MAX_ENTRIES_PER_CALL] * 4
    # Each call is atomic: a reader never sees part of one.
    assert seen <= {0, 5_000, 10_000, 15_000}
    changes = store.changes_since(0, 20_000)
    assert [c.version for c in changes] == list(range(5_001, 20_001))
    assert [c.vin for c in changes] == [e.vin for e in first[5_000:] + again]
    assert {c.value for c in changes[-5_000:]} == {b"2"}
    assert store.count() == 15_000


def test_stores_with_other_prefixes_do_not_see_each_other(
    redis_url: str, prefixes: Callable[[], str]
) -> None:
    one, other = (
        RedisStore.connect(redis_url, prefixes()),
        RedisStore.connect(redis_url, prefixes()),
    )
    try:
        one.write([StoreEntry("VIN1", b"one")])
        assert (other.get("VIN1"), other.count(), other.changes_since(0, 10)) == (None, 0, [])
        assert other.write([StoreEntry("VIN1", b"other")]) == 1
        assert one.changes_since(0, 10) == [Change("VIN1", 1, b"one")]
        assert other.changes_since(0, 10) == [Change("VIN1", 1, b"other")]
    finally:
        one.close()
        other.close()


def test_versions_stay_exact_near_two_to_the_53(
    store: RedisStore, raw: redis.Redis, prefix: str
) -> None:
    start = 2**53 - 10
    raw.set("{" + prefix + "}:version", start)
    assert store.write([StoreEntry(f"VIN{i}", b"x") for i in range(3)]) == start + 3
    assert [c.version for c in store.changes_since(start, 10)] == [start + 1, start + 2, start + 3]
    assert store.changes_since(start + 2, 10) == [Change("VIN2", start + 3, b"x")]


def test_a_flushed_script_cache_is_reloaded(store: RedisStore, raw: redis.Redis) -> None:
    store.write([StoreEntry("VIN1", b"a")])
    assert store.changes_since(0, 10) == [Change("VIN1", 1, b"a")]
    raw.script_flush()
    assert store.write([StoreEntry("VIN2", b"b")]) == 2
    raw.script_flush()
    assert store.changes_since(0, 10) == [Change("VIN1", 1, b"a"), Change("VIN2", 2, b"b")]


def test_a_script_lost_again_right_after_its_reload_still_runs(
    store: RedisStore, raw: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another SCRIPT FLUSH between the reload and the call (other clients of the server)."""
    load = store._client.script_load

    def load_then_lose(script: str) -> str:
        digest = load(script)
        raw.script_flush()
        return digest

    raw.script_flush()
    monkeypatch.setattr(store._client, "script_load", load_then_lose)
    assert store.write([StoreEntry("VIN1", b"a")]) == 1
    raw.script_flush()
    assert store.changes_since(0, 10) == [Change("VIN1", 1, b"a")]


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:1/0", "redis://:url-secret-9@127.0.0.1:1/0"],
    ids=["plain", "url-password"],
)
def test_nothing_listening_is_a_store_error_without_the_password(url: str) -> None:
    store = RedisStore.connect(url, "bethos:latest", password="kw-secret-7")
    calls: list[Callable[[], object]] = [
        lambda: store.write([StoreEntry("VIN1", b"a")]),
        lambda: store.changes_since(0, 10),
        lambda: store.get("VIN1"),
        store.count,
    ]
    for call in calls:
        with pytest.raises(
            StoreError, match=r"^redis at 127\.0\.0\.1:1: \w+( \w+)? failed: "
        ) as failure:
            call()
        assert "secret" not in str(failure.value)
        assert "connect" in str(failure.value).lower()
    store.close()


def test_a_rejected_password_is_a_store_error_without_the_password(redis_url: str) -> None:
    if urlparse(redis_url).password:
        pytest.skip("the URL's password wins over the one given")
    store = RedisStore.connect(redis_url, "bethos:latest", password="wrong-secret-3")
    with pytest.raises(StoreError, match=r"^redis at .*: count failed: ") as failure:
        store.count()
    assert "wrong-secret-3" not in str(failure.value)
    store.close()
