from __future__ import annotations

from bethos.record import Signal
from devstack.verify import compare, same_value


def test_equal_topics_have_no_difference() -> None:
    truth = {"V": {"a": Signal(1.0, 5), "b": Signal("D", 6)}}
    assert compare(truth, {"V": {"a": Signal(1, 5), "b": Signal("D", 6)}}) == []


def test_every_kind_of_difference_is_reported() -> None:
    truth = {"V": {"a": Signal(1.0, 5), "b": Signal(True, 6)}, "W": {"a": Signal(1.0, 1)}}
    latest = {"V": {"a": Signal(2.0, 5), "c": Signal(1, 1)}, "X": {"a": Signal(1.0, 1)}}
    found = {(d.vin, d.signal) for d in compare(truth, latest)}
    assert found == {("V", "a"), ("V", "b"), ("V", "c"), ("W", "*"), ("X", "*")}


def test_values_compare_as_influxdb_types() -> None:
    assert same_value(42, 42.0)
    assert not same_value(True, 1)
    assert not same_value("1", 1)
