"""An in-memory latest store: one process, for development and tests."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence

from connectors.store.base import Change, StoreEntry, check_limit


class MemoryStore:
    """`LatestStore` in this process, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._records: dict[str, bytes] = {}
        # VIN -> version of its newest change. A changed VIN is re-inserted, so the dict's order
        # is ascending by version.
        self._changes: dict[str, int] = {}
        self._epoch = uuid.uuid4().hex

    def write(self, entries: Sequence[StoreEntry]) -> int:
        with self._lock:
            if not entries:
                return 0
            for vin, value in entries:
                self._version += 1
                if value is None:
                    self._records.pop(vin, None)
                else:
                    self._records[vin] = value
                self._changes.pop(vin, None)
                self._changes[vin] = self._version
            return self._version

    def changes_since(self, cursor: int, limit: int) -> list[Change]:
        check_limit(limit)
        with self._lock:
            changes: list[Change] = []
            for vin, version in self._changes.items():
                if version > cursor:
                    changes.append(Change(vin, version, self._records.get(vin)))
                    if len(changes) == limit:
                        break
            return changes

    def get(self, vin: str) -> bytes | None:
        with self._lock:
            return self._records.get(vin)

    def count(self) -> int:
        with self._lock:
            return len(self._records)

    def head(self) -> int:
        with self._lock:
            return self._version

    def epoch(self) -> str:
        with self._lock:
            return self._epoch if self._version else ""

    def close(self) -> None:
        pass
