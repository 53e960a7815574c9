"""The store of the `state_store` strategy: the protocol, Redis and in-memory, in shards."""

from __future__ import annotations

from connectors.store.base import LatestStore
from connectors.store.memory import MemoryStore
from connectors.store.redis import RedisConnection, RedisStore
from connectors.store.shards import ShardedStore, shard_of, shard_prefix

__all__ = [
    "LatestStore",
    "MemoryStore",
    "RedisStore",
    "ShardedStore",
    "open_store",
    "shard_of",
    "shard_prefix",
]


def open_store(
    backend: str,
    redis_url: str,
    key_prefix: str,
    password: str | None = None,
    cluster: bool = False,
    shards: int = 1,
) -> ShardedStore:
    """The store of `backend` in `shards` shards: "memory" or "redis" (a Redis Cluster with
    `cluster`; the shards share one connection)."""
    if shards < 1:
        raise ValueError(f"a store has at least one shard, got {shards}")
    if backend == "memory":
        return ShardedStore([MemoryStore() for _ in range(shards)])
    if backend == "redis":
        connection = RedisConnection(redis_url, password, cluster)
        # Only a store of one shard can be one of the untagged layout from before hash tags.
        return ShardedStore(
            [
                RedisStore(connection, shard_prefix(key_prefix, shard, shards), shards == 1)
                for shard in range(shards)
            ]
        )
    raise ValueError(f"unknown store backend {backend!r}: expected 'memory' or 'redis'")
