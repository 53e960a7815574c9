"""The latest store on a real Redis Cluster of three masters on loopback: each store's (each
shard's) hash-tagged keys live in one slot, so its scripts run; the same semantics as on one
server; a wipe is noticed; and the `state_store` jobs run on it, the shards spread over the
masters."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.cluster

from bethos.config import EtlSettings, MergerSettings, load_settings
from bethos.strategies.state_store import StateStore
from connectors.store import RedisStore, shard_prefix
from connectors.store.base import StoreEntry
from connectors.store.redis import WRITE_SCRIPT, tagged_keys
from devstack.stack import Stack
from tests import stack_lock
from tests.integration.helpers import subtask_metrics, wait_for, wait_until
from tests.integration.test_merger import latest_equals, produce, records_for
from tests.integration.test_strategies import keyed, redis_store_config
from tests.unit.connectors.store.test_latest_store import SEMANTIC_CHECKS

pytestmark = pytest.mark.integration

PORTS = (17101, 17102, 17103)


def _cluster_ok(port: int) -> bool:
    try:
        info = redis.Redis(port=port, socket_timeout=2).cluster("info")
    except redis.RedisError:
        return False
    return isinstance(info, dict) and info.get("cluster_state") == "ok"


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A three-master Redis Cluster on fixed ports: one module at a time runs it."""
    with stack_lock.resource("redis_cluster"):
        yield from _cluster_url(tmp_path_factory)


def _cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    assert server and cli, "redis-server and redis-cli come with the stack's Redis (install.sh)"
    root = tmp_path_factory.mktemp("redis-cluster")
    nodes = []
    for port in PORTS:
        where = root / str(port)
        where.mkdir()
        nodes.append(
            subprocess.Popen(
                [
                    server,
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(where / "nodes.conf"),
                    "--dir", str(where),
                    "--save", "",
                    "--appendonly", "no",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        for port in PORTS:
            while not _ping(port):
                assert time.monotonic() < deadline, f"redis on {port} did not start"
                time.sleep(0.2)
        created = subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in PORTS),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        while not all(_cluster_ok(port) for port in PORTS):
            assert time.monotonic() < deadline + 30, "the cluster did not become ok"
            time.sleep(0.5)
        yield f"redis://127.0.0.1:{PORTS[0]}/0"
    finally:
        for node in nodes:
            node.terminate()
        for node in nodes:
            node.wait(timeout=30)


def _ping(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def stores(cluster_url: str) -> Iterator[Callable[[], tuple[RedisStore, str]]]:
    """New stores on the cluster, each with its key prefix."""
    opened: list[RedisStore] = []

    def new() -> tuple[RedisStore, str]:
        prefix = f"test-{uuid.uuid4().hex[:10]}:latest"
        opened.append(RedisStore.connect(cluster_url, prefix, cluster=True))
        return opened[-1], prefix

    yield new
    for store in opened:
        store.close()


@pytest.mark.parametrize("check", SEMANTIC_CHECKS, ids=lambda check: check.__name__)
def test_semantics_on_a_cluster(
    stores: Callable[[], tuple[RedisStore, str]], check: Callable[[RedisStore], None]
) -> None:
    check(stores()[0])


def test_the_keys_share_one_slot_and_untagged_ones_would_not(cluster_url: str) -> None:
    client = redis.cluster.RedisCluster.from_url(cluster_url)
    try:
        prefix = "bethos:latest"
        slots = {client.keyslot(key) for key in tagged_keys(prefix)}
        assert len(slots) == 1
        untagged = [f"{prefix}:{name}" for name in ("records", "changes", "version", "epoch")]
        assert len({client.keyslot(key) for key in untagged}) > 1
        # Asked directly (the cluster client refuses before sending), the server refuses too.
        owner = redis.Redis(port=client.get_node_from_key(untagged[0]).port)
        try:
            with pytest.raises(redis.ResponseError, match=r"CROSSSLOT"):
                owner.eval(WRITE_SCRIPT, len(untagged), *untagged, "e", "VIN1", "1", "x")
        finally:
            owner.close()
    finally:
        client.close()


def test_stores_spread_over_the_masters_and_a_wipe_is_noticed(
    stores: Callable[[], tuple[RedisStore, str]], cluster_url: str
) -> None:
    many = [stores() for _ in range(12)]
    for store, _ in many:
        store.write([StoreEntry("VIN1", b"a")])
    client = redis.cluster.RedisCluster.from_url(cluster_url)
    try:
        masters = {client.get_node_from_key(tagged_keys(prefix)[0]).port for _, prefix in many}
        assert len(masters) > 1
        store, prefix = many[0]
        store.write([StoreEntry(f"VIN{i}", b"x") for i in range(3)])
        cursor, seen = store.head(), store.epoch()
        for key in tagged_keys(prefix):  # a node restarted without persistence
            client.delete(key)
    finally:
        client.close()
    store.write([StoreEntry(f"VIN{i}", b"y") for i in range(10)])
    assert store.head() > cursor and store.epoch() not in ("", seen)


def test_a_running_job_spreads_its_store_over_the_masters_and_each_subtask_publishes(
    cluster_url: str,
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
    unique: str,
) -> None:
    """The merger and its publisher, two subtasks each, on the three-master cluster: the
    store's shards land on every master, and both publisher subtasks publish their share."""
    prefix = f"test:{unique}"
    config = redis_store_config(
        pipeline_configs[1], "cluster-store", prefix, redis_url=cluster_url, redis_cluster=True
    )
    options = load_settings(MergerSettings, config).latest_merger
    assert isinstance(options, StateStore)
    shards = options.state_store.shards
    records = records_for(400, "a", 1_000_000, received_at=1)
    produce(etl_settings, keyed(records))
    submit("latest_merger", config, parallelism=2)
    publisher = submit("state_store_publisher", config, parallelism=2)
    assert wait_for(latest_equals(etl_settings, records), timeout=180) == []

    client = redis.cluster.RedisCluster.from_url(cluster_url)
    try:
        masters: dict[int, int] = {}
        for shard in range(shards):
            records_key = tagged_keys(shard_prefix(prefix, shard, shards))[0]
            assert client.hlen(records_key) > 0, shard
            port = client.get_node_from_key(records_key).port
            masters[port] = masters.get(port, 0) + 1
    finally:
        client.close()
    assert sorted(masters) == list(PORTS), masters

    def published() -> dict[str, Mapping[str, Any]]:
        return subtask_metrics(publisher, "published", "shards")

    wait_until(lambda: int(published().get("published", {}).get("sum", 0)) >= 400, 60, 1)
    figures = published()
    # Each subtask holds some of the shards, and together all; each published some VINs.
    assert int(figures["shards"]["sum"]) == shards and int(figures["shards"]["min"]) > 0
    assert int(figures["published"]["min"]) > 0
    assert int(figures["published"]["sum"]) >= 400
