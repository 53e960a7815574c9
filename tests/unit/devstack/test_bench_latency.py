"""The latency benchmark's arithmetic: which record delivers a reading, the split, percentiles."""

from __future__ import annotations

import pytest

from bethos.exceptions import BethosError
from devstack.bench.latency import (
    Delay,
    Reading,
    Seen,
    delays,
    newest_per_vin,
    percentile,
    summarize,
    vins_behind,
)


def test_a_reading_is_delivered_by_the_first_record_at_least_as_new() -> None:
    aggregated = {
        "V1": [
            Seen(ts=900, produced_at=5_000, message_ts=5_001),
            Seen(ts=1_000, produced_at=12_000, message_ts=12_003),
        ],
        "V2": [Seen(ts=2_000, produced_at=13_000, message_ts=13_001)],
    }
    latest = {
        # a flush that came before V1's reading reached the merger, then the one after it
        "V1": [
            Seen(ts=900, produced_at=10_000, message_ts=10_020),
            Seen(ts=1_000, produced_at=20_000, message_ts=20_050),
        ],
    }
    readings = [Reading("V1", 1_000), Reading("V2", 2_000)]
    found, missing = delays(readings, aggregated, latest)
    assert found == [Delay(etl_ms=11_000, flush_wait_ms=8_000, kafka_ms=50)]
    assert found[0].total_ms == 20_050 - 1_000
    assert missing == 1  # V2 never reached the latest topic


def test_a_newer_reading_of_the_same_vin_delivers_an_older_one() -> None:
    aggregated = {"V": [Seen(ts=3_000, produced_at=9_000, message_ts=9_000)]}
    latest = {"V": [Seen(ts=3_000, produced_at=10_000, message_ts=10_005)]}
    found, missing = delays([Reading("V", 1_000), Reading("V", 3_000)], aggregated, latest)
    assert [d.total_ms for d in found] == [9_005, 7_005] and missing == 0


def test_nearest_rank_percentiles() -> None:
    values = list(range(1, 101))
    assert [percentile(values, q) for q in (50, 95, 99, 100)] == [50, 95, 99, 100]
    assert percentile([7], 99) == 7
    with pytest.raises(BethosError):
        percentile([], 50)


def test_summary_per_part() -> None:
    figures = summarize([Delay(1, 2, 3), Delay(10, 20, 30)])
    assert figures["total_ms"] == {"p50": 6, "p95": 60, "p99": 60, "max": 60}
    assert figures["flush_wait_ms"]["p50"] == 2


def test_the_wait_ends_when_every_vins_newest_reading_is_delivered() -> None:
    newest = newest_per_vin([Reading("V1", 1_000), Reading("V2", 2_000), Reading("V1", 3_000)])
    assert newest == {"V1": 3_000, "V2": 2_000}
    # V2's newest is out, V1's is not (an older record of it is): one VIN to go, however new
    # V2's record is.
    latest = {
        "V1": [Seen(ts=1_000, produced_at=1, message_ts=1)],
        "V2": [Seen(ts=9_000, produced_at=1, message_ts=1)],
    }
    assert vins_behind(newest, latest) == 1
    latest["V1"].append(Seen(ts=3_000, produced_at=2, message_ts=2))
    assert vins_behind(newest, latest) == 0
