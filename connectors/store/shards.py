"""A latest store in shards: each VIN belongs to one shard (`shard_of`), and each shard is a
`LatestStore` of its own, with its own versions, change log and epoch. The publisher's subtasks
each page through their own shards, and on a Redis Cluster each shard's keys carry a hash tag of
their own, so the shards spread over the masters' slots.

The shard count is part of the keys' names (`P:shard-3-of-16`): a store given another count is
a new store, never shards that mix two mappings of VINs.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from connectors.store.base import LatestStore, StoreEntry


def shard_of(vin: str, shards: int) -> int:
    """The shard of a VIN: stable across processes and restarts."""
    return zlib.crc32(vin.encode("utf-8")) % shards


def shard_prefix(key_prefix: str, shard: int, shards: int) -> str:
    """A shard's key prefix; a store of one shard keeps the store's own prefix (the layout from
    before shards)."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not one of 0..{shards - 1}")
    return key_prefix if shards == 1 else f"{key_prefix}:shard-{shard}-of-{shards}"


class ShardedStore:
    """The shards of one store, in order; a VIN is read and written in `shard_of(vin)`."""

    def __init__(self, shards: Sequence[LatestStore]) -> None:
        if not shards:
            raise ValueError("a store has at least one shard")
        self.shards = tuple(shards)

    def shard(self, index: int) -> LatestStore:
        return self.shards[index]

    def shard_for(self, vin: str) -> LatestStore:
        return self.shards[shard_of(vin, len(self.shards))]

    def write(self, entries: Sequence[StoreEntry]) -> None:
        """Each shard's entries in one write of that shard (atomic per shard), in their order."""
        if len(self.shards) == 1:
            self.shards[0].write(entries)
            return
        by_shard: dict[int, list[StoreEntry]] = {}
        for entry in entries:
            by_shard.setdefault(shard_of(entry.vin, len(self.shards)), []).append(entry)
        for index, part in by_shard.items():
            self.shards[index].write(part)

    def get(self, vin: str) -> bytes | None:
        return self.shard_for(vin).get(vin)

    def count(self) -> int:
        """VINs held, over every shard."""
        return sum(shard.count() for shard in self.shards)

    def close(self) -> None:
        for shard in self.shards:
            shard.close()
