from __future__ import annotations

import pytest

from bethos.config import EtlSettings, InfluxSettings
from bethos.fetch_result import Reject
from bethos.source import rejects
from bethos.source.rejects import fingerprint, first_sent, reach_back


def reject(row: str, at: int, reason: str = "no_vin") -> Reject:
    return Reject(reason, "detail", row, at)


def test_a_reject_found_again_is_not_sent_again() -> None:
    sent: dict[int, int] = {}
    new, repeated = first_sent([reject("a", 100), reject("b", 200)], sent, forget_before=0)
    assert [r.row for r in new] == ["a", "b"] and repeated == 0
    new, repeated = first_sent([reject("b", 200), reject("c", 300)], sent, forget_before=0)
    assert [r.row for r in new] == ["c"] and repeated == 1
    assert sorted(sent.values()) == [100, 200, 300]


def test_the_same_row_with_another_reason_is_another_dead_letter() -> None:
    sent: dict[int, int] = {}
    first_sent([reject("a", 100, "no_vin")], sent, forget_before=0)
    new, _ = first_sent([reject("a", 100, "invalid_value")], sent, forget_before=0)
    assert len(new) == 1


def test_rows_older_than_any_later_read_reaches_are_forgotten() -> None:
    sent: dict[int, int] = {}
    first_sent([reject("old", 100), reject("kept", 500)], sent, forget_before=0)
    new, _ = first_sent([reject("old", 100)], sent, forget_before=400)
    # Still known while this read ran; forgotten after it, as no read reaches time 100 again.
    assert new == []
    assert list(sent.values()) == [500]


def test_past_the_bound_the_oldest_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rejects, "MAX_REMEMBERED", 3)
    sent: dict[int, int] = {}
    first_sent([reject(str(i), i) for i in (5, 1, 4, 2, 3)], sent, forget_before=0)
    assert sorted(sent.values()) == [3, 4, 5]


def test_fingerprints_are_stable_across_processes() -> None:
    # Not Python's salted hash(): the set is restored on other TaskManagers.
    assert fingerprint(reject("a", 1)) == 0x713F7151D9B19DC5
    # The reason and the row identify a dead letter; the row holds the point's time.
    assert fingerprint(reject("a", 1)) == fingerprint(Reject("no_vin", "other", "a", 2))


def test_reach_back_covers_the_lookback_and_the_reconcile_window() -> None:
    influx = InfluxSettings(pods=["p"])
    plain = EtlSettings(influxdb=influx, lookback=30_000, reconcile_interval=0)
    assert reach_back(1_000_000, plain) == 1_000_000 - 30_000
    reconciled = EtlSettings(
        influxdb=influx,
        lookback=30_000,
        reconcile_interval=300_000,
        reconcile_window=600_000,
        chunk_duration=10_000,
    )
    assert reach_back(1_000_000, reconciled) == 1_000_000 - 610_000
