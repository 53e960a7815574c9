"""The longest-silent VINs, read from the latest topic: each VIN's compacted record carries
`updated_at`, its newest signal `ts`, so now minus it is how long the VIN has not reported (as
of its last emission). The merger's census counts them per threshold (`vins_silent`); this
names them."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import orjson

from bethos.config import KafkaSettings
from connectors.kafka.reader import latest_by_key, read_topic


@dataclass(frozen=True)
class SilentVin:
    vin: str
    silent_ms: int
    updated_at: int


def longest_silent(records: dict[str, bytes], now_ms: int, count: int) -> list[SilentVin]:
    """The `count` VINs with the oldest `updated_at`, oldest first; records that are no latest
    record (unreadable, a batch) are passed over."""
    newest: list[tuple[int, str]] = []
    for vin, value in records.items():
        try:
            updated_at = orjson.loads(value)["updated_at"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            continue
        if type(updated_at) is int:
            newest.append((updated_at, vin))
    return [SilentVin(vin, now_ms - at, at) for at, vin in heapq.nsmallest(count, newest)]


def most_silent(kafka: KafkaSettings, topic: str, now_ms: int, count: int) -> list[SilentVin]:
    """The longest-silent VINs of the latest topic (read whole: seconds at 100k VINs)."""
    return longest_silent(latest_by_key(read_topic(kafka, topic)), now_ms, count)
