"""`log_compacted` (the default): each flush emits the changed (or all) VINs' latest records to
the compacted `latest` topic, key = VIN."""

from __future__ import annotations

from typing import Literal

from bethos.strategies.base import MergerOptions


class LogCompacted(MergerOptions):
    strategy: Literal["log_compacted"] = "log_compacted"
