from __future__ import annotations

import orjson

from devstack.status.rest_figures import silent_figures, wanted_metric_ids
from devstack.status.silent_vins import SilentVin, longest_silent


def test_silent_counts_are_summed_over_subtasks_shortest_threshold_first() -> None:
    values = {
        "merge_per_VIN.silent_for.1h.vins_silent": {"sum": 3.0, "max": 2.0},
        "merge_per_VIN.silent_for.10m.vins_silent": {"sum": 7.0, "max": 4.0},
        "merge_per_VIN.silent_for.1d.vins_silent": {"sum": 0.0},
        "merge_per_VIN.vins_held": {"sum": 70.0},
    }
    assert list(silent_figures(values).items()) == [("10m", 7), ("1h", 3), ("1d", 0)]
    listing = [{"id": metric_id} for metric_id in values] + [{"id": "merge_per_VIN.other"}]
    assert set(wanted_metric_ids(listing)) == set(values)


def latest(updated_at: object) -> bytes:
    return orjson.dumps({"schema": 1, "vin": "x", "updated_at": updated_at})


def test_the_longest_silent_vins_are_those_with_the_oldest_reading() -> None:
    records = {
        "A": latest(9_000),
        "B": latest(1_000),
        "C": latest(5_000),
        "D": b"[not a record",
        "E": latest("soon"),
    }
    assert longest_silent(records, now_ms=10_000, count=2) == [
        SilentVin("B", 9_000, 1_000),
        SilentVin("C", 5_000, 5_000),
    ]
    assert longest_silent(records, 10_000, 0) == []
