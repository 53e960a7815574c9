"""The store of the `state_store` strategy: the protocol, Redis and in-memory."""

from __future__ import annotations

from connectors.store.base import LatestStore
from connectors.store.memory import MemoryStore
from connectors.store.redis import RedisStore

__all__ = ["LatestStore", "MemoryStore", "RedisStore", "open_store"]


def open_store(
    backend: str,
    redis_url: str,
    key_prefix: str,
    password: str | None = None,
    cluster: bool = False,
) -> LatestStore:
    """The store of `backend`: "memory" or "redis" (a Redis Cluster with `cluster`)."""
    if backend == "memory":
        return MemoryStore()
    if backend == "redis":
        return RedisStore(redis_url, key_prefix, password, cluster)
    raise ValueError(f"unknown store backend {backend!r}: expected 'memory' or 'redis'")
