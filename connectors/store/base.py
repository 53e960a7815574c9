"""The latest record of each VIN, with a change log the publisher pages through.

Each entry written gets the next version of one counter, atomically with the write, so a reader
that has seen version N has seen every change with a version <= N. The change log holds one
member per VIN (the version of its newest change), so its size is bounded by the VIN count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol


class StoreEntry(NamedTuple):
    vin: str
    # The latest record (JSON); None is a tombstone: the VIN is forgotten.
    value: bytes | None


class Change(NamedTuple):
    vin: str
    version: int
    # The value in the store now; None when deleted.
    value: bytes | None


class LatestStore(Protocol):
    def write(self, entries: Sequence[StoreEntry]) -> int:
        """Store the entries atomically; the highest version assigned (0 for no entries)."""
        ...

    def changes_since(self, cursor: int, limit: int) -> list[Change]:
        """At most `limit` changes with a version above `cursor`, ascending by version."""
        ...

    def get(self, vin: str) -> bytes | None: ...

    def count(self) -> int:
        """VINs held (tombstoned ones excluded)."""
        ...

    def head(self) -> int:
        """The newest version assigned; 0 for a new (or wiped) store."""
        ...

    def epoch(self) -> str:
        """An id of this store's contents, set by the first write; another after a wipe (and
        the writes after it), "" before any write."""
        ...

    def close(self) -> None: ...


def check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
