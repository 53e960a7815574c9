"""`log_compacted` (the default): each flush emits the changed (or all) VINs' latest records to
the compacted `latest` topic, key = VIN; an expired VIN as a tombstone."""

from __future__ import annotations

from typing import Literal

from bethos.config import MergerOptions
from bethos.strategies.flushing import FlushLogic


class LogCompacted(MergerOptions):
    strategy: Literal["log_compacted"] = "log_compacted"

    def build(self) -> FlushLogic:
        """Nothing beyond the per-VIN flush: each emission is one message of the topic."""
        return FlushLogic.of(self)
