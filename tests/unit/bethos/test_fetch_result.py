from __future__ import annotations

import itertools

import pytest

from bethos.fetch_result import FetchResult, Reject
from bethos.record import SignalValue


def test_offer_keeps_the_newest_value_whatever_the_order() -> None:
    offers: list[tuple[SignalValue, int]] = [(9.0, 3), ("zzz", 1), (1.0, 5), (True, 4)]
    for order in itertools.permutations(offers):
        result = FetchResult()
        for value, ts in order:
            result.offer("V", "s", value, ts)
        assert result.latest == {"V": {"s": (1.0, 5)}}
        assert result.readings == 0  # offering does not count: the reader counts what it reads


# Values in ascending value order: booleans < numbers (an int before an equal float) < strings.
ASCENDING: list[SignalValue] = [False, True, -1.5, 0, 1, 1.0, 2, "", "a", "b"]


@pytest.mark.parametrize(("low", "high"), list(itertools.combinations(ASCENDING, 2)))
def test_offer_breaks_a_tie_in_ts_by_the_value_order(low: SignalValue, high: SignalValue) -> None:
    for order in ((low, high), (high, low)):
        result = FetchResult()
        for value in order:
            result.offer("V", "s", value, 7)
        kept = result.latest["V"]["s"]
        assert kept == (high, 7) and type(kept.value) is type(high)


def test_offer_keeps_signals_and_vins_apart() -> None:
    result = FetchResult()
    result.offer("V", "a", 1, 10)
    result.offer("V", "b", 2, 5)
    result.offer("W", "a", 3, 1)
    assert result.latest == {"V": {"a": (1, 10), "b": (2, 5)}, "W": {"a": (3, 1)}}


def test_merge_adds_counts_and_rejects_and_keeps_the_newest() -> None:
    first = FetchResult(readings=3, rejects=[Reject("schema", "one", "r1", 10)])
    first.offer("V", "s", 1.0, 10)
    first.offer("V", "t", "old", 10)
    second = FetchResult(readings=4, rejects=[Reject("no_vin", "two", "r2", 9)])
    second.offer("V", "s", 0.5, 9)  # older: superseded by the first
    second.offer("V", "t", "new", 11)
    second.offer("W", "s", False, 1)
    first.merge(second)
    assert first.readings == 7
    assert first.rejects == [Reject("schema", "one", "r1", 10), Reject("no_vin", "two", "r2", 9)]
    assert first.latest == {"V": {"s": (1.0, 10), "t": ("new", 11)}, "W": {"s": (False, 1)}}
    # The merged-in result is left as it was.
    assert second.readings == 4 and len(second.rejects) == 1


def test_merge_breaks_ties_by_the_value_order_in_either_direction() -> None:
    for left, right in ((1, 1.0), (1.0, 1)):
        merged = FetchResult()
        merged.offer("V", "s", left, 5)
        other = FetchResult()
        other.offer("V", "s", right, 5)
        merged.merge(other)
        assert type(merged.latest["V"]["s"].value) is float
